"""``python: module:function`` checks: importing the function, and the ``invoke`` it is called with."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy.typing as npt

from endpointkit._spec_errors import suggest
from endpointkit.errors import SpecError

__all__ = ["PythonCheck", "PythonInvoke", "import_check"]

#: What a ``python:`` check is given: ``invoke(inputs)`` with inputs as name -> array (or ``Tensor``), returning
#: name -> output array. It sends one request to the version under test.
PythonInvoke = Callable[[Mapping[str, Any]], dict[str, npt.NDArray[Any]]]
#: A ``python:`` check: called with a :data:`PythonInvoke`; fails by raising (or by returning False).
PythonCheck = Callable[[PythonInvoke], object]


def import_check(field: str, reference: str, base_dir: Path) -> PythonCheck:
    """The function ``module:function`` names. The module is imported as Python would import it, or else, when
    its top-level package is not importable, from the spec file's folder ``base_dir``.

    Raises:
        SpecError: the module cannot be imported (or raises while it is), has no such function, or it is not
            callable; ``field`` is ``field`` (``verify[2].python``).
    """
    module_name, _, function_name = reference.partition(":")
    try:
        module = _import(module_name, base_dir)
    except ImportError as error:
        raise SpecError(
            f"{field}: cannot import {module_name}: {error}; install it, or put it in the spec file's folder "
            f"({base_dir})",
            field=field,
        ) from None
    except Exception as error:  # the module's own code failed: say what it raised, not our traceback
        raise SpecError(
            f"{field}: importing {module_name} raised {type(error).__name__}: {error}", field=field
        ) from None
    function = getattr(module, function_name, None)
    if function is None:
        public = [name for name in vars(module) if not name.startswith("_")]
        raise SpecError(
            f"{field}: module {module_name} has no {function_name}{suggest(function_name, public)}",
            field=field,
        )
    if not callable(function):
        raise SpecError(
            f"{field}: {reference} is a {type(function).__name__}, not a function: name a function that takes "
            "invoke",
            field=field,
        )
    checked: PythonCheck = function
    return checked


def _import(module_name: str, base_dir: Path) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        top = module_name.partition(".")[0]
        if error.name != top:
            raise
        # Found in the spec's folder without putting that folder on sys.path for everyone (fleets import checks
        # from several threads).
        spec = importlib.machinery.PathFinder.find_spec(top, [str(base_dir)])
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules[top] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(top, None)
            raise
        return importlib.import_module(module_name)
