"""Optional dependencies, imported only where they are needed."""

from __future__ import annotations

import importlib
from types import ModuleType

from endpointkit.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, extra: str) -> ModuleType:
    """Import an optional dependency or say exactly how to install it.

    Raises:
        MissingDependencyError: the module is not installed; the message names the pip extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed here and is not installed: pip install 'endpointkit[{extra}]'"
        ) from exc
