"""The TLS Secrets of an AKS endpoint's listener, made at apply (never in the config record, like the key Secret).

- ``tls: auto``: Secret ``EP-ca`` (``kubernetes.io/tls``) keeps the endpoint's private CA, certificate and key, so
  every renewal is signed by the CA clients already trust; Secret ``EP-tls`` holds the server certificate for the
  host, its key and the CA certificate (``ca.crt``, which status hands to clients). The server certificate is
  issued again when it is missing or unreadable, no longer covers the host, was signed by another CA, or expires
  within :data:`RENEW_WITHIN`.
- ``tls: {cert_file, key_file}``: ``EP-tls`` holds the user's pair, checked (``_certificates.read_pair``) and
  re-applied only when the files changed.
- ``tls: {key_vault_certificate}``: no Secret of ours; the application routing operator syncs the certificate.
- ``tls: off``: none; Secrets left by an earlier ``tls`` setting are deleted.

The Gateway serves a renewed Secret without a restart: Gateway API controllers watch the Secrets their listeners
reference (https://gateway-api.sigs.k8s.io/guides/tls/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from endpointkit._observations import Drift
from endpointkit.adapters.aks import _gateway, _render
from endpointkit.adapters.aks._certificates import (
    Authority,
    CertificateInfo,
    certificate_info,
    covers,
    issue_server_certificate,
    make_authority,
    needs_renewal,
    read_pair,
)
from endpointkit.adapters.aks._front import secret_text
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.aks._routes import Front
from endpointkit.errors import ProviderError
from endpointkit.spec import AksTls, Deployment

__all__ = ["CERTIFICATE_FIELD", "RENEW_WITHIN", "TlsOutcome", "certificate_drift", "ensure_tls", "spec_pair"]

#: a server certificate of ``tls: auto`` is issued again when it expires within this
RENEW_WITHIN = timedelta(days=30)
#: the drift field of a listener certificate that apply replaces
CERTIFICATE_FIELD = "certificate"


@dataclass(frozen=True)
class TlsOutcome:
    """What :func:`ensure_tls` did: the certificate the listener serves and whether it wrote a Secret."""

    certificate: CertificateInfo | None
    written: bool


def spec_pair(deployment: Deployment, host: str) -> tuple[str, str, CertificateInfo]:
    """The certificate chain and key ``tls: {cert_file, key_file}`` names, checked for ``host``.

    Raises:
        SpecError: a file is missing, or the pair is not usable for ``host`` (names the field and the fix).
    """
    tls = deployment.target.tls  # type: ignore[union-attr]
    assert isinstance(tls, AksTls) and tls.cert_file is not None and tls.key_file is not None
    base = deployment.spec.base_dir
    return read_pair(
        Path(base, tls.cert_file),
        Path(base, tls.key_file),
        host=host,
        field_prefix=f"targets.{deployment.target_name}.tls",
    )


def ensure_tls(
    kube: KubeClient, deployment: Deployment, front: Front, host: str | None, *, now: datetime | None = None
) -> TlsOutcome:
    """Make or renew the listener's Secrets for ``host``; idempotent (an unchanged certificate is not written).

    Raises:
        SpecError: ``tls`` names files that are not usable for ``host``.
        ProviderError: ``tls`` needs a certificate but the host is not known (an existing Gateway without a
            listener host name or address, and no ``host`` in the spec).
    """
    namespace = front.namespace
    if not front.owns_gateway:
        return TlsOutcome(None, False)  # an existing Gateway's listeners keep their own certificates
    if front.tls in ("off", "key_vault"):
        for name in (f"{front.endpoint}-tls", f"{front.endpoint}-ca"):
            found = kube.get("Secret", name, namespace) if front.tls == "off" else None
            if found is not None and _ours(found):
                kube.delete("Secret", name, namespace)
        return TlsOutcome(None, False)
    assert front.tls_secret is not None
    if host is None:
        raise ProviderError(
            f"endpoint {front.endpoint}: the host its certificate must name is unknown (Gateway "
            f"{front.gateway_label} has no listener host name nor address yet): set host: in the target",
            provider="kubernetes",
            operation="issue the TLS certificate",
            code="HostUnknown",
        )
    live = kube.get("Secret", front.tls_secret, namespace)
    if front.tls == "files":
        certificate, key, info = spec_pair(deployment, host)
        if secret_text(live, "tls.crt") == certificate and secret_text(live, "tls.key") == key:
            return TlsOutcome(info, False)
        kube.apply(_secret(front, front.tls_secret, certificate, key, None))
        return TlsOutcome(info, True)
    authority = _authority(kube, front)
    current = _current(live)
    if current is not None and not _renew(current, live, authority, host, now):
        return TlsOutcome(current, False)
    certificate, key = issue_server_certificate(authority, host, now=now)
    kube.apply(_secret(front, front.tls_secret, certificate, key, authority.certificate_pem))
    return TlsOutcome(certificate_info(certificate), True)


def certificate_drift(
    deployment: Deployment,
    front: Front,
    host: str | None,
    info: CertificateInfo | None,
    *,
    now: datetime | None = None,
) -> Drift | None:
    """The listener certificate apply would replace, as drift (so plan shows the update): an auto certificate
    expiring within 30 days or not covering the host, or a live pair that is not the one the spec's files hold."""
    if host is None or front.tls_secret is None:
        return None
    if front.tls == "files":
        _, _, wanted = spec_pair(deployment, host)
        if info is not None and info.fingerprint_sha256 == wanted.fingerprint_sha256:
            return None
        return Drift(
            CERTIFICATE_FIELD, _describe(info), f"the certificate of the spec's files ({_day(wanted)})"
        )
    if info is None:
        return Drift(CERTIFICATE_FIELD, None, f"a certificate for {host}")
    if not covers(info.hosts, host):
        return Drift(CERTIFICATE_FIELD, f"for {', '.join(info.hosts) or 'no host'}", f"for {host}")
    if needs_renewal(info, now=now, within=RENEW_WITHIN):
        return Drift(CERTIFICATE_FIELD, _describe(info), "renewed")
    return None


def _describe(info: CertificateInfo | None) -> str | None:
    return None if info is None else f"expires {_day(info)}"


def _day(info: CertificateInfo) -> str:
    return info.not_after.date().isoformat()


def _ours(secret: dict[str, Any]) -> bool:
    labels = secret.get("metadata", {}).get("labels") or {}
    return bool(labels.get(_render.LABEL_ENDPOINT))


def _authority(kube: KubeClient, front: Front) -> Authority:
    """The endpoint's CA from ``EP-ca``, made (and kept) when missing or unreadable."""
    assert front.ca_secret is not None
    found = kube.get("Secret", front.ca_secret, front.namespace)
    certificate, key = secret_text(found, "tls.crt"), secret_text(found, "tls.key")
    if certificate and key:
        try:
            certificate_info(certificate)
        except ValueError:
            pass
        else:
            return Authority(certificate, key)
    authority = make_authority(f"endpointkit {front.endpoint} CA"[:64])
    kube.apply(_secret(front, front.ca_secret, authority.certificate_pem, authority.key_pem, None))
    return authority


def _current(live: dict[str, Any] | None) -> CertificateInfo | None:
    pem = secret_text(live, "tls.crt")
    if not pem:
        return None
    try:
        return certificate_info(pem)
    except ValueError:
        return None


def _renew(
    info: CertificateInfo, live: dict[str, Any] | None, authority: Authority, host: str, now: datetime | None
) -> bool:
    return (
        not covers(info.hosts, host)
        or needs_renewal(info, now=now, within=RENEW_WITHIN)
        or secret_text(live, "ca.crt") != authority.certificate_pem
    )


def _secret(front: Front, name: str, certificate: str, key: str, ca: str | None) -> dict[str, Any]:
    return _gateway.tls_secret(
        name,
        front.namespace,
        certificate_pem=certificate,
        key_pem=key,
        ca_pem=ca,
        labels=front.labels("tls"),
    )
