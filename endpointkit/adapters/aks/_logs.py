"""Logs of an AKS endpoint: what every container of every pod of its Deployments wrote, through the Kubernetes API.

Each read asks ``read_namespaced_pod_log`` with ``timestamps=true``: the kubelet prefixes every line with the
RFC 3339 time it received it ("timestamps: If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of
every line", https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#get-read-log-of-the-specified-pod),
so the replicas' lines interleave by one clock. ``previous=true`` reads a restarted container's last run.

Following polls at a bounded interval. The API has ``sinceSeconds`` but the Python client no ``sinceTime``, so a
poll asks for the seconds elapsed since the previous read of that container (a monotonic measure: no clock skew
between here and the cluster matters) plus a margin, then drops what it has shown already by timestamp.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from endpointkit._observations import LogRecord
from endpointkit.adapters._log_records import LineClock, interleave, select
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.aks._render import LABEL_ENDPOINT, LABEL_VARIANT
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.errors import NotFoundError, ProviderError

__all__ = ["DEFAULT_POLL_INTERVAL", "PodLogs", "split_timestamp"]

logger = logging.getLogger("endpointkit.aks")

#: seconds between two polls of the pods' logs while following
DEFAULT_POLL_INTERVAL = 2.0
# Seconds a follow poll reaches back beyond the previous read: request latency and the kubelet's buffering.
_RESUME_MARGIN = 2

# "2024-12-05T23:09:26.123456789Z text" (RFC3339Nano, or an offset instead of Z)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ?")


def split_timestamp(line: str) -> tuple[datetime | None, str]:
    """The time the API server put before ``line`` (UTC) and the line without it; ``(None, line)`` when absent."""
    match = _STAMP.match(line)
    if match is None:
        return None, line
    whole, fraction, zone = match.groups()
    micros = (fraction or "")[:6].ljust(6, "0")
    try:
        moment = datetime.fromisoformat(f"{whole}.{micros}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None, line
    return moment.astimezone(timezone.utc), line[match.end() :]


@dataclass
class _Container:
    """One container of one pod, read incrementally: where the last read ended, by the kubelet's timestamps."""

    pod: str
    container: str
    clock: LineClock
    last_time: datetime | None = None
    #: lines already shown whose time is ``last_time`` (a re-read returns them again, in the same order)
    shown_at_last: int = 0
    read_at: float | None = None

    def fresh(self, text: str) -> list[LogRecord]:
        """The records of ``text`` (a read with timestamps) not shown yet; moves the position past them."""
        kept: list[LogRecord] = []
        before, shown_before, again = self.last_time, self.shown_at_last, 0
        for raw in text.splitlines():
            moment, line = split_timestamp(raw.rstrip("\r"))
            if moment is not None and before is not None:
                if moment < before:
                    continue
                if moment == before:
                    again += 1
                    if again <= shown_before:
                        continue
            if moment is not None:
                self.shown_at_last = (self.shown_at_last + 1) if moment == self.last_time else 1
                self.last_time = moment
            kept.append(self.clock.record(line, moment))
        return kept


class PodLogs:
    """Reads an endpoint's pod logs.

    ``kube`` returns the cluster's client (made again after the adapter dropped it); ``cluster_exists`` tells a
    cluster deleted with its endpoint (a follow then ends) from an API server that fails; ``sleep`` paces a
    follow; ``monotonic`` measures the time between reads.
    """

    def __init__(
        self,
        kube: Callable[[], KubeClient],
        *,
        namespace: str,
        cluster_exists: Callable[[], bool] = lambda: True,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._cluster_exists = cluster_exists
        self._namespace = namespace
        self._poll_interval = poll_interval
        self._sleep = sleep
        self._monotonic = monotonic

    def records(
        self,
        endpoint: str,
        *,
        variant: str | None,
        since: datetime | None,
        tail: int | None,
        follow: bool,
        previous: bool,
    ) -> Iterator[LogRecord]:
        """Every replica's records interleaved by time; the first read happens now, so a missing endpoint raises
        here. ``previous`` adds what restarted containers wrote in their last run.

        Raises:
            NotFoundError: the endpoint has no Deployment in the namespace.
        """
        if not self._deployments(endpoint):
            raise NotFoundError(
                f"AKS endpoint {endpoint} does not exist in namespace {self._namespace}",
                provider="kubernetes",
                operation="logs",
            )
        containers: dict[tuple[str, str], _Container] = {}
        streams = self._first_reads(endpoint, variant, containers, since=since, tail=tail, previous=previous)
        first = select(interleave(streams), since=since, tail=tail)
        return self._stream(endpoint, variant, containers, first, follow=follow, previous=previous)

    def _stream(
        self,
        endpoint: str,
        variant: str | None,
        containers: dict[tuple[str, str], _Container],
        first: Iterator[LogRecord],
        *,
        follow: bool,
        previous: bool,
    ) -> Iterator[LogRecord]:
        yield from first
        while follow:
            self._sleep(self._poll_interval)
            if not self._still_deployed(endpoint):
                return  # the endpoint was destroyed: nothing more will be written
            known = list(containers.values())
            streams = self._first_reads(
                endpoint, variant, containers, since=None, tail=None, previous=previous
            )
            streams.extend(
                self._next_read(each) for each in known if (each.pod, each.container) in containers
            )
            yield from interleave(streams)

    def _still_deployed(self, endpoint: str) -> bool:
        try:
            return bool(self._deployments(endpoint))
        except ProviderError:
            if self._cluster_exists():
                raise
            return False  # the cluster went with its last endpoint

    def _deployments(self, endpoint: str) -> list[dict[str, Any]]:
        return self._kube().list("Deployment", self._namespace, label_selector=self._selector(endpoint, None))

    @staticmethod
    def _selector(endpoint: str, variant: str | None) -> str:
        selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{LABEL_ENDPOINT}={endpoint}"
        return selector if variant is None else f"{selector},{LABEL_VARIANT}={variant}"

    def _first_reads(
        self,
        endpoint: str,
        variant: str | None,
        containers: dict[tuple[str, str], _Container],
        *,
        since: datetime | None,
        tail: int | None,
        previous: bool,
    ) -> list[Sequence[LogRecord]]:
        """Read every started container not read before (all of them at first, new pods while following);
        containers of pods that are gone are forgotten."""
        pods = self._kube().list("Pod", self._namespace, label_selector=self._selector(endpoint, variant))
        live: set[tuple[str, str]] = set()
        streams: list[Sequence[LogRecord]] = []
        for pod in sorted(pods, key=lambda item: str(item["metadata"]["name"])):
            name = str(pod["metadata"]["name"])
            pod_variant = str((pod["metadata"].get("labels") or {}).get(LABEL_VARIANT, ""))
            for container, status in _containers(pod):
                key = (name, container)
                live.add(key)
                if key in containers or not _started(status):
                    continue
                entry = _Container(name, container, LineClock(pod_variant, name))
                containers[key] = entry
                if previous and _restarted(status):
                    # The last run's lines go on their own clock: they end before the current run begins.
                    last_run = _Container(name, container, LineClock(pod_variant, name))
                    streams.append(self._read(last_run, previous=True, since=since, tail=tail))
                streams.append(self._read(entry, previous=False, since=since, tail=tail))
                if entry.read_at is None:
                    del containers[key]  # nothing could be read yet: the next poll tries again
        for gone in [key for key in containers if key not in live]:
            del containers[gone]
        return streams

    def _next_read(self, entry: _Container) -> list[LogRecord]:
        assert entry.read_at is not None
        elapsed = self._monotonic() - entry.read_at
        return self._read(entry, since_seconds=math.ceil(elapsed) + _RESUME_MARGIN)

    def _read(
        self,
        entry: _Container,
        *,
        previous: bool = False,
        since: datetime | None = None,
        tail: int | None = None,
        since_seconds: int | None = None,
    ) -> list[LogRecord]:
        if since is not None:
            # sinceSeconds must be positive; the records are filtered by ``since`` exactly afterwards.
            since_seconds = max(1, math.ceil((datetime.now(timezone.utc) - since).total_seconds()))
        started = self._monotonic()
        try:
            text = self._kube().read_pod_log(
                entry.pod,
                self._namespace,
                container=entry.container,
                previous=previous,
                timestamps=True,
                since_seconds=since_seconds,
                tail_lines=tail,
            )
        except NotFoundError:
            return []  # the pod went between the list and the read (a rollout, a scale-in)
        except ProviderError as error:
            if _status(error) != 400:
                raise
            # 400 BadRequest: the container is waiting to start, or has no previous run after all (it changed
            # between the list and the read); it has nothing to show yet.
            logger.debug("no logs of pod %s container %s yet: %s", entry.pod, entry.container, error)
            return []
        entry.read_at = started
        return entry.fresh(text)


def _containers(pod: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Each of the pod's (non-init) containers with its status ({} before the kubelet reports one)."""
    statuses = {str(s.get("name")): s for s in (pod.get("status", {}).get("containerStatuses") or [])}
    names = [str(c.get("name")) for c in (pod.get("spec", {}).get("containers") or [])]
    return [(name, statuses.get(name, {})) for name in names]


def _started(status: Mapping[str, Any]) -> bool:
    """Whether the container has run at all: before that, the API answers 400 (waiting to start)."""
    state = status.get("state") or {}
    return "running" in state or "terminated" in state or _restarted(status)


def _restarted(status: Mapping[str, Any]) -> bool:
    return int(status.get("restartCount") or 0) > 0 or bool((status.get("lastState") or {}).get("terminated"))


def _status(error: ProviderError) -> int | None:
    status = error.details.get("status")
    return int(status) if isinstance(status, int) else None
