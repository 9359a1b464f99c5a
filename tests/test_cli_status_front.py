"""``status`` shows what fronts an AKS endpoint: the Gateway, its readiness and address, the host and the
certificate's expiry (from the state's ``extra``, as the AKS adapter fills it)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from endpointkit.adapters.base import EndpointState, EndpointStatus
from endpointkit.cli._output import _describe_state


def aks_state(**extra: object) -> EndpointState:
    return EndpointState(
        "vision", "azure", "aks", EndpointStatus.IN_SERVICE, url="https://vision.example.com", extra=extra
    )


def test_the_gateway_host_and_certificate_are_shown() -> None:
    expires = datetime.now(timezone.utc) + timedelta(days=90, hours=1)
    text = _describe_state(
        aks_state(
            gateway="default/vision",
            gateway_programmed=True,
            address="20.1.2.3",
            host="vision.example.com",
            tls="auto",
            certificate_expires=expires.isoformat(),
        ),
        "vision",
    )
    assert "  gateway: default/vision (programmed) at 20.1.2.3, host vision.example.com" in text
    assert (
        f"  certificate: expires {expires.date().isoformat()} (in 90 days; apply renews it 30 days before)"
        in text
    )


def test_a_gateway_not_yet_programmed_and_a_certificate_from_files() -> None:
    expires = datetime.now(timezone.utc) + timedelta(days=10, hours=1)
    text = _describe_state(
        aks_state(
            gateway="infra/shared",
            gateway_programmed=False,
            tls="files",
            certificate_expires=expires.isoformat(),
        ),
        "vision",
    )
    assert "  gateway: infra/shared (not programmed), host -" in text
    assert "(in 10 days)" in text and "renews" not in text


def test_other_targets_show_no_front() -> None:
    state = EndpointState("vision", "local", "local", EndpointStatus.IN_SERVICE, url="http://127.0.0.1:8000")
    assert "gateway" not in _describe_state(state, "vision")
