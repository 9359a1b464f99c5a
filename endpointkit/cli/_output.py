"""What the commands print: the progress line, a state as text or JSON, one endpoint's outcome."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from endpointkit import EndpointState
from endpointkit._api import time_left
from endpointkit._wait import ProgressEvent


class _ProgressLine:
    """A live status line on a terminal; plain lines (on status change, or every 30 s) otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._last: tuple[str, str] | None = None
        self._last_time = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        text = f"{event.subject}: {event.status} ({event.elapsed:.0f}s / {event.timeout:.0f}s)"
        if self.live:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._last = (event.subject, event.status)
            return
        key = (event.subject, event.status)
        now = time.monotonic()
        if key != self._last or now - self._last_time >= 30:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last, self._last_time = key, now

    def finish(self) -> None:
        if self.live and self._last is not None:
            self.stream.write("\n")
        elif self.live:
            self.stream.write("\r\033[K")
        self.stream.flush()


def _emit(args: argparse.Namespace, document: Any, human: str) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(human.rstrip("\n") + "\n")


def _describe_state(state: EndpointState | None, name: str) -> str:
    if state is None:
        return f"{name}: NOT_FOUND"
    lines = [f"{state.name} on {state.target} ({state.kind}): {state.status.value}"]
    if state.url:
        lines.append(f"  url: {state.url}")
    if state.reason:
        lines.append(f"  reason: {state.reason}")
    if state.expires_at:
        lines.append(f"  {time_left(state.expires_at)} (at {state.expires_at.isoformat()})")
    lines.extend(_front_lines(state.extra))
    for variant in state.variants:
        lines.append(
            f"  variant {variant.name}: {variant.instance_count} x {variant.instance_type or 'local'} "
            f"weight {variant.weight:g}" + (f" ({variant.status})" if variant.status else "")
        )
    return "\n".join(lines)


def _front_lines(extra: Mapping[str, Any]) -> list[str]:
    """What fronts an endpoint (the Gateway of an AKS endpoint): its host, readiness and certificate."""
    lines: list[str] = []
    if extra.get("gateway"):
        ready = "programmed" if extra.get("gateway_programmed") else "not programmed"
        address = f" at {extra['address']}" if extra.get("address") else ""
        lines.append(f"  gateway: {extra['gateway']} ({ready}){address}, host {extra.get('host') or '-'}")
    expires = extra.get("certificate_expires")
    if expires:
        when = datetime.fromisoformat(str(expires))
        days = (when - datetime.now(timezone.utc)).days
        renewal = "; apply renews it 30 days before" if extra.get("tls") == "auto" else ""
        lines.append(f"  certificate: expires {when.date().isoformat()} (in {days} days{renewal})")
    return lines


def _state_document(state: EndpointState) -> dict[str, Any]:
    document = state.to_dict()
    if state.expires_at is not None:
        remaining = state.expires_at - datetime.now(timezone.utc)
        document["expires_in_seconds"] = int(remaining.total_seconds())
    return document


@dataclass(frozen=True)
class _Outcome:
    """One endpoint's result: the JSON document and text of a single-spec run, and its fleet table cells."""

    document: dict[str, Any]
    human: str
    result: str
    detail: str = ""
    hourly_cost: float | None = None
    fleet_human: str | None = None  # the text shown above a fleet's table, when there is one
    footnotes: tuple[str, ...] = ()  # lines shown once under a fleet's table (price sources)
    has_changes: bool = False  # plan only: apply would change something (drift included)
