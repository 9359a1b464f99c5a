"""A local update proves its new version before it takes traffic, and nothing but a verified version ever serves.

Against a real tritonserver serving ``classify`` (``tests/triton_preprocess_models.py``): an update's ``verify``
hook runs against a candidate state that reaches the new servers only; a candidate with the wrong preprocessing
fails a golden check and the previous version keeps serving every request; an interrupt (Ctrl-C, or SIGTERM as
the CLI turns it into one) while the candidate starts or is checked leaves the previous version serving and no
new server running; a good candidate takes over while a client keeps calling, without one failed call.

The test's hooks reach the adapter where an apply hands over the one it builds from a spec's ``verify`` section:
``ek.apply`` with an adapter whose ``update_endpoint`` adds the test's hook, so the provisioner removes the model
copy and config of a refused version as it does for any failed update. One test applies a spec with a ``verify``
section instead.

Tests after which the previous version must still serve, unchanged, share one endpoint (:func:`serving`): a
tritonserver with a Python-backend model takes seconds to start.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit._wait import Progress
from endpointkit.adapters.base import DesiredState, EndpointState, EndpointStatus, VerifyHook
from endpointkit.adapters.local import LocalAdapter, TritonServerProcess
from endpointkit.cli import _interrupts_as_errors
from endpointkit.spec import Deployment, LocalTarget, Spec, spec_from_dict
from tests.adapters.conftest import _stop_all, servers_under
from tests.adapters.test_local import local_spec
from tests.triton_preprocess_models import (
    CLASSIFIER_V1,
    CLASSIFIER_V2,
    CLASSIFIER_V2_BGR,
    Classifier,
    sample_image,
    write_classifier,
)

_BOUND = 120.0
IMAGE = sample_image()
VERSIONS = {"v1": CLASSIFIER_V1, "v2": CLASSIFIER_V2}


# ---- helpers -----------------------------------------------------------------------------------------------
class VerifyingAdapter(LocalAdapter):
    """A LocalAdapter whose updates run ``check`` on the candidate, then the hook the caller passes (if any)."""

    def __init__(self, target: LocalTarget, *, check: VerifyHook | None = None, **options: Any) -> None:
        super().__init__(target, **options)
        self.check = check

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        def both(candidate: EndpointState) -> None:
            if self.check is not None:
                self.check(candidate)
            if verify is not None:
                verify(candidate)

        super().update_endpoint(deployment, desired, progress=progress, verify=both)


def verifying_adapter(spec: Spec, check: VerifyHook | None = None, **options: Any) -> VerifyingAdapter:
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    return VerifyingAdapter(target, check=check, **options)


def scores(state: EndpointState, adapter: LocalAdapter, **options: Any) -> np.ndarray[Any, Any]:
    return ek.invoke_endpoint(state, {"IMAGE": IMAGE}, adapter=adapter, **options)["SCORES"]


def version_of(answer: np.ndarray[Any, Any]) -> str:
    """Which version's answer ``answer`` is (``v1``, ``v2``), or ``wrong: <answer>``."""
    for name, classifier in VERSIONS.items():
        if np.allclose(answer, classifier.scores(IMAGE), rtol=1e-4, atol=1e-5):
            return name
    return f"wrong: {answer.tolist()}"


def golden_check(adapter: LocalAdapter, expected: Classifier) -> VerifyHook:
    """A hook that fails the candidate unless it answers ``expected``'s scores for the sample image."""

    def check(candidate: EndpointState) -> None:
        answer = scores(candidate, adapter)
        wanted = expected.scores(IMAGE)
        if not np.allclose(answer, wanted, rtol=1e-4, atol=1e-5):
            difference = np.abs(answer - wanted)
            raise ek.VerificationError(
                f"check cat failed on the candidate of {candidate.name}: SCORES differ by up to {difference.max():g}",
                check="cat",
                output="SCORES",
                detail=f"largest difference {difference.max():g} at [{int(difference.argmax())}]",
                subject=f"candidate of endpoint {candidate.name} on local",
            )

    return check


class Client:
    """Invokes an endpoint state in a loop from its own thread and adapter, as a long-running service holding the
    state of the first apply would, and records which version answered each call (or the error)."""

    def __init__(self, state: EndpointState) -> None:
        self.state = state
        self.answers: list[str] = []
        self._adapter = LocalAdapter.from_state(state)
        self._changed = threading.Condition()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="client")

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(_BOUND)
        self._adapter.close()

    def wait_for_calls(self, count: int, answer: str | None = None) -> None:
        """Block until ``count`` more calls (answered by version ``answer``, when given) have returned."""
        with self._changed:
            start = len(self.answers)

            def enough() -> bool:
                new = self.answers[start:]
                return len([seen for seen in new if answer is None or seen == answer]) >= count

            assert self._changed.wait_for(enough, _BOUND), (
                f"the client made too few calls: {self.answers[start:]}"
            )

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                seen = version_of(scores(self.state, self._adapter))
            except ek.EndpointKitError as error:
                seen = f"error: {error!r}"
            with self._changed:
                self.answers.append(seen)
                self._changed.notify_all()


def endpoint_files(root: Path, name: str) -> set[str]:
    """Every path in the endpoint's state folder, relative to it."""
    folder = root / name
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@dataclasses.dataclass
class Serving:
    """The shared endpoint: v1 in service, and the repositories of the versions an update may bring."""

    root: Path
    spec: Spec
    state: EndpointState
    processes: list[int]
    record: bytes
    files: set[str]
    repositories: dict[str, Path]

    def spec_of(self, version: str) -> Spec:
        return local_spec(self.repositories[version], self.root, name=self.spec.name)

    def stop_strays(self) -> None:
        """Stop what runs from the state folder beside the shared endpoint's own processes (a failed test's)."""
        strays = [pid for pid in servers_under(self.root, program=None) if pid not in self.processes]
        if strays:
            _stop_all(strays)

    def assert_unchanged(self) -> None:
        """v1 serves as before: same status, record and files, the same processes and nothing else, v1's answer."""
        adapter = LocalAdapter.from_state(self.state)
        try:
            after = ek.status(self.spec, adapter=adapter)
            assert after is not None and after.status is EndpointStatus.IN_SERVICE
            assert after.extra == self.state.extra
            assert version_of(scores(self.state, adapter)) == "v1"
        finally:
            adapter.close()
        assert (self.root / self.spec.name / "endpoint.json").read_bytes() == self.record
        assert sorted(servers_under(self.root, program=None)) == self.processes
        assert endpoint_files(self.root, self.spec.name) == self.files


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    """One endpoint serving v1 for the tests that leave it as it was; destroyed, with nothing left, at the end."""
    folder = tmp_path_factory.mktemp("verify")
    root = folder / "state"
    repositories = {
        name: write_classifier(folder / name, classifier)
        for name, classifier in (("v1", CLASSIFIER_V1), ("v2", CLASSIFIER_V2), ("v2-bgr", CLASSIFIER_V2_BGR))
    }
    spec = local_spec(repositories["v1"], root, name="verified")
    adapter = verifying_adapter(spec)
    try:
        state = ek.apply(spec, adapter=adapter)
        record = (root / spec.name / "endpoint.json").read_bytes()
        yield Serving(
            root,
            spec,
            state,
            sorted(servers_under(root, program=None)),
            record,
            endpoint_files(root, spec.name),
            repositories,
        )
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()
        leftovers = servers_under(root, program=None)
        if leftovers:
            _stop_all(leftovers)
            pytest.fail(f"tritonserver processes {leftovers} were still running after the tests")


# ---- the plan line ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rollout", "line"),
    [
        ("all_at_once", "all at once: the new version takes all traffic once its checks pass"),
        (
            {"canary": {"step": "10%", "wait": "5m"}},
            "canary asked, but the local target does not split traffic between versions: the new version takes "
            "all traffic at once once its checks pass",
        ),
        (
            {"linear": {"step": 25, "wait": "1m"}},
            "linear asked, but the local target does not split traffic between versions: the new version takes "
            "all traffic at once once its checks pass",
        ),
    ],
)
def test_the_plan_says_the_local_target_moves_all_traffic_at_once(
    rollout: Any, line: str, tmp_path: Path
) -> None:
    spec = spec_from_dict(
        {
            "name": "noted",
            "model": {"repository": str(write_classifier(tmp_path / "repository", CLASSIFIER_V1))},
            "variants": [{"name": "primary"}],
            "rollout": rollout,
            "verify": [{"name": "smoke", "python": "json:dumps"}],
            "targets": {"local": {"kind": "local", "state_dir": str(tmp_path / "state")}},
        }
    )
    deployment = spec.deployment("local")
    assert isinstance(deployment.target, LocalTarget)

    assert LocalAdapter(deployment.target).rollout_lines(deployment) == [line]
    assert ek.plan(spec, "local").rollout == (line,)


# ---- verification -----------------------------------------------------------------------------------------
@pytest.mark.triton
def test_wrong_preprocessing_fails_verification_and_the_old_version_keeps_serving(serving: Serving) -> None:
    adapter = verifying_adapter(serving.spec)
    adapter.check = golden_check(adapter, CLASSIFIER_V2)
    with Client(serving.state) as client:
        client.wait_for_calls(3)
        with pytest.raises(ek.VerificationError) as raised:
            ek.apply(serving.spec_of("v2-bgr"), adapter=adapter)
        client.wait_for_calls(3)
    adapter.close()

    assert (raised.value.check, raised.value.output) == ("cat", "SCORES")
    assert set(client.answers) == {"v1"}, client.answers
    serving.assert_unchanged()


@pytest.mark.triton
def test_a_candidate_state_reaches_the_new_servers_only(serving: Serving) -> None:
    adapter = verifying_adapter(serving.spec)
    seen: list[tuple[EndpointState, str]] = []

    def check(candidate: EndpointState) -> None:
        seen.append((candidate, version_of(scores(candidate, adapter))))
        raise ek.VerificationError("refused by the test", check="inspect", detail="the test keeps v1")

    adapter.check = check
    with pytest.raises(ek.VerificationError, match="refused by the test"):
        ek.apply(serving.spec_of("v2"), adapter=adapter)

    ((candidate, answered),) = seen
    assert answered == "v2"
    assert candidate.status is EndpointStatus.IN_SERVICE and candidate.extra["candidate"] is True
    old_pids = {server["pid"] for server in serving.state.extra["servers"]}
    assert old_pids.isdisjoint(server["pid"] for server in candidate.extra["servers"])
    assert candidate.extra["config"] != serving.state.extra["config"]
    # Its servers are gone now and endpoint.json names v1's: a candidate fails rather than answer with v1.
    for transport in ("http", "grpc"):
        with pytest.raises(ek.NotFoundError, match="not running"):
            scores(candidate, adapter, transport=transport)
    adapter.close()
    serving.assert_unchanged()


@pytest.mark.triton
def test_apply_runs_the_specs_checks_against_the_candidate_and_keeps_the_old_version(
    serving: Serving, tmp_path: Path
) -> None:
    np.save(tmp_path / "cat.npy", IMAGE)
    np.save(tmp_path / "cat-scores.npy", CLASSIFIER_V2.scores(IMAGE))
    checked = spec_from_dict(
        {
            "name": serving.spec.name,
            "model": {"repository": str(serving.repositories["v2-bgr"])},
            "variants": [{"name": "primary"}],
            "timeouts": {"create": "60s", "update": "60s", "delete": "60s"},
            "verify": [
                {"name": "cat", "inputs": {"IMAGE": "cat.npy"}, "expect": {"SCORES": "cat-scores.npy"}}
            ],
            "targets": {"local": {"kind": "local", "state_dir": str(serving.root)}},
        },
        base_dir=tmp_path,
    )
    adapter = verifying_adapter(checked)

    with pytest.raises(ek.VerificationError) as raised:
        ek.apply(checked, adapter=adapter)
    adapter.close()

    assert (raised.value.check, raised.value.output) == ("cat", "SCORES")
    assert raised.value.subject == f"candidate of endpoint {serving.spec.name} on local"
    serving.assert_unchanged()


class Pause:
    """Holds the thread that reaches :meth:`here` (the main one) until a signal interrupts it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._never = threading.Event()

    def here(self) -> None:
        self.reached.set()
        deadline = time.monotonic() + _BOUND
        while time.monotonic() < deadline:
            # Short waits: a signal that lands just before a lock wait blocks does not interrupt it (the sender
            # takes the GIL exactly then), but Python runs its handler as soon as the wait returns.
            self._never.wait(0.05)
        raise AssertionError("no signal interrupted the update")

    def signal_main_thread_when_reached(self, signum: signal.Signals) -> threading.Thread:
        def send() -> None:
            if self.reached.wait(_BOUND):
                signal.pthread_kill(threading.main_thread().ident or 0, signum)

        sender = threading.Thread(target=send, name="signal-sender")
        sender.start()
        return sender


def paused_launcher(pause: Pause) -> Callable[..., TritonServerProcess]:
    """Starts tritonserver as the adapter does, pausing once its process exists (recorded in ``starting/``)."""

    def launch(*arguments: Any, on_spawn: Callable[[TritonServerProcess], None], **options: Any) -> Any:
        def spawned(server: TritonServerProcess) -> None:
            on_spawn(server)
            pause.here()

        return TritonServerProcess.start(*arguments, on_spawn=spawned, **options)

    return launch


@pytest.fixture
def interrupts() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt (a background job inherits it ignored) and SIGTERM too, as in the CLI."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _interrupts_as_errors():
            yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupt_update(serving: Serving, adapter: LocalAdapter, pause: Pause, signum: signal.Signals) -> None:
    """Apply v2 with ``adapter`` in this (the main) thread; send ``signum`` once it reaches ``pause``."""
    assert threading.current_thread() is threading.main_thread()  # where Python runs signal handlers
    sender = pause.signal_main_thread_when_reached(signum)
    try:
        with pytest.raises(KeyboardInterrupt):
            ek.apply(serving.spec_of("v2"), adapter=adapter)
    finally:
        pause.reached.set()  # the sender ends even if the update never paused
        sender.join(_BOUND)
        adapter.close()


SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])


@pytest.mark.triton
@SIGNALS
def test_an_interrupt_while_the_candidate_is_checked_leaves_the_old_version_serving_alone(
    serving: Serving, interrupts: None, signum: signal.Signals
) -> None:
    pause = Pause()

    interrupt_update(serving, verifying_adapter(serving.spec, lambda candidate: pause.here()), pause, signum)

    serving.assert_unchanged()


@pytest.mark.triton
@SIGNALS
def test_an_interrupt_while_the_candidate_starts_leaves_the_old_version_serving_alone(
    serving: Serving, interrupts: None, signum: signal.Signals
) -> None:
    pause = Pause()
    try:
        interrupt_update(
            serving, verifying_adapter(serving.spec, launcher=paused_launcher(pause)), pause, signum
        )

        serving.assert_unchanged()
    finally:
        serving.stop_strays()


# ---- a good candidate takes over --------------------------------------------------------------------------
@pytest.mark.triton
def test_a_verified_candidate_takes_over_without_a_failed_call(state_root: Path, tmp_path: Path) -> None:
    v1 = local_spec(write_classifier(tmp_path / "v1", CLASSIFIER_V1), state_root, name="taken-over")
    v2 = local_spec(write_classifier(tmp_path / "v2", CLASSIFIER_V2), state_root, name="taken-over")
    adapter = verifying_adapter(v1)
    golden = golden_check(adapter, CLASSIFIER_V2)
    candidates: list[EndpointState] = []
    try:
        before = ek.apply(v1, adapter=adapter)
        with Client(before) as client:

            def check(candidate: EndpointState) -> None:
                candidates.append(candidate)
                golden(candidate)
                client.wait_for_calls(3)  # v1 still answers while the candidate is checked

            adapter.check = check
            after = ek.apply(v2, adapter=adapter)
            client.wait_for_calls(3, answer="v2")

        assert after.extra["servers"] == candidates[0].extra["servers"]
        assert "candidate" not in after.extra
        switched = client.answers.index("v2")
        assert set(client.answers[:switched]) == {"v1"} and set(client.answers[switched:]) == {"v2"}, (
            client.answers
        )
        assert version_of(scores(before, adapter)) == "v2"  # an old state follows the record to v2
        assert servers_under(state_root) == [after.extra["servers"][0]["pid"]]
    finally:
        ek.destroy(v1, adapter=adapter)
        adapter.close()
