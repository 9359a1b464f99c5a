"""Pooled adapters for invoke_endpoint, kept warm between calls and closed when an endpoint goes away."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from endpointkit.adapters import adapter_for_state
from endpointkit.adapters.base import Adapter, EndpointState

__all__ = ["cached_adapter", "close_cached_clients", "forget_endpoint", "remember_adapter"]

# Adapters hold pooled keep-alive connections: rebuilding one per call would cost a TCP handshake (and for
# SageMaker a boto3 client) on every request. A small bounded cache keyed by endpoint keeps them warm.
_CACHE_SIZE = 16
_cache: OrderedDict[tuple[str, str, str, str | None], tuple[Adapter, EndpointState]] = OrderedDict()
_cache_lock = threading.Lock()


def _key(state: EndpointState) -> tuple[str, str, str, str | None]:
    return (state.kind, state.target, state.name, state.url)


def cached_adapter(state: EndpointState, options: dict[str, Any] | None = None) -> Adapter:
    """The pooled adapter for ``state``'s endpoint, made on first use."""
    with _cache_lock:
        hit = _cache.get(_key(state))
        if hit is not None:
            _cache.move_to_end(_key(state))
            return hit[0]
    return remember_adapter(state, adapter_for_state(state, **(options or {})))


def remember_adapter(state: EndpointState, adapter: Adapter) -> Adapter:
    """Keep ``adapter`` as the pooled one for ``state``'s endpoint; closes what it replaces or evicts."""
    with _cache_lock:
        previous = _cache.pop(_key(state), None)
        _cache[_key(state)] = (adapter, state)
        evicted = [_cache.popitem(last=False)[1][0] for _ in range(max(0, len(_cache) - _CACHE_SIZE))]
    for old in evicted + ([previous[0]] if previous and previous[0] is not adapter else []):
        old.close()
    return adapter


def close_cached_clients() -> None:
    """Close every pooled connection that ``invoke_endpoint`` keeps (e.g. before destroying a local server)."""
    with _cache_lock:
        adapters = [adapter for adapter, _ in _cache.values()]
        _cache.clear()
    for adapter in adapters:
        adapter.close()


def forget_endpoint(name: str) -> None:
    """Drop pooled connections to endpoint ``name`` (called when it is destroyed)."""
    with _cache_lock:
        keys = [key for key in _cache if key[2] == name]
        adapters = [_cache.pop(key)[0] for key in keys]
    for adapter in adapters:
        adapter.close()
