"""Adapters by target kind, imported lazily so listing them never imports a cloud SDK."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from endpointkit.adapters.base import Adapter, EndpointState
from endpointkit.errors import MissingDependencyError, SpecError
from endpointkit.spec import Deployment

__all__ = ["AdapterEntry", "adapter_for_state", "create_adapter", "register_adapter", "registered_kinds"]


@dataclass(frozen=True, slots=True)
class AdapterEntry:
    """Where an adapter lives (``module:Class``) and which pip extra its SDK comes from."""

    target: str
    extra: str | None


_REGISTRY: dict[str, AdapterEntry] = {
    "local": AdapterEntry("endpointkit.adapters.local:LocalAdapter", "local"),
    "sagemaker": AdapterEntry("endpointkit.adapters.sagemaker:SageMakerAdapter", "sagemaker"),
    "aks": AdapterEntry("endpointkit.adapters.aks:AksAdapter", "aks"),
    "memory": AdapterEntry("endpointkit.adapters.memory:MemoryAdapter", None),
}


def register_adapter(kind: str, target: str, *, extra: str | None = None) -> None:
    """Register (or replace) the adapter class for a target kind, as ``"package.module:Class"``."""
    _REGISTRY[kind] = AdapterEntry(target, extra)


def registered_kinds() -> list[str]:
    """Target kinds that have an adapter, sorted."""
    return sorted(_REGISTRY)


def _adapter_class(kind: str) -> type[Adapter]:
    try:
        entry = _REGISTRY[kind]
    except KeyError:
        raise SpecError(
            f"no adapter for target kind {kind!r}; known kinds: {', '.join(registered_kinds())}"
        ) from None
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ImportError as exc:
        hint = f": pip install 'endpointkit[{entry.extra}]'" if entry.extra else ""
        raise MissingDependencyError(f"the {kind} target needs {exc.name or module_name}{hint}") from exc
    adapter_class: type[Adapter] = getattr(module, class_name)
    return adapter_class


def create_adapter(deployment: Deployment, **options: Any) -> Adapter:
    """The adapter for ``deployment``'s target kind. ``options`` go to its constructor (client factories, …)."""
    factory: Callable[..., Adapter] = _adapter_class(deployment.kind)
    return factory(deployment.target, target_name=deployment.target_name, **options)


def adapter_for_state(state: EndpointState, **options: Any) -> Adapter:
    """An adapter able to invoke the endpoint ``state`` describes, without the spec it came from."""
    return _adapter_class(state.kind).from_state(state, **options)
