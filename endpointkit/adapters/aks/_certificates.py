"""Certificates of AKS endpoints served over HTTPS: a private CA and the server certificates it issues, the checks
of a certificate and key pair a spec brings (``tls: {cert_file, key_file}``), and the facts status and renewal
read from a certificate.

- An authority is an EC P-256 key and a self-signed certificate for it, ``CA:TRUE, pathlen:0`` with
  ``keyCertSign``: it signs server certificates and nothing that could sign further.
- A server certificate names its host in subjectAltName (clients ignore the subject's CN for that, RFC 6125
  section 6.4.4 and the CA/Browser Forum Baseline Requirements), is for ``serverAuth`` and is no CA.
- A host is covered by a subjectAltName DNS name equal to it or by a wildcard standing for exactly its left-most
  label (``*.example.com`` covers ``a.example.com``, not ``example.com`` nor ``a.b.example.com``; RFC 6125
  section 6.4.3, as OpenSSL checks without partial wildcards), and an IP literal by an equal iPAddress entry.

``cryptography`` comes with the ``aks`` extra and is imported when a function here runs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from endpointkit._lazy import require
from endpointkit.errors import SpecError

__all__ = [
    "Authority",
    "CertificateInfo",
    "certificate_info",
    "check_pair",
    "covers",
    "issue_server_certificate",
    "make_authority",
    "needs_renewal",
    "read_pair",
]

SERVER_CERTIFICATE_DAYS = 397
"""Validity of a server certificate issued here. The CA/Browser Forum Baseline Requirements (section 6.3.2): a
subscriber certificate issued on or after 2020-09-01 SHOULD NOT be valid for more than 397 days and MUST NOT be
for more than 398 (https://cabforum.org/working-groups/server/baseline-requirements/requirements/); Apple's and
Chrome's clients refuse longer ones."""

# Issued certificates start an hour before "now", so a client whose clock is a little behind still accepts them.
_CLOCK_SKEW = timedelta(hours=1)
# X.509's upper bound on a commonName (RFC 5280, ub-common-name).
_MAX_COMMON_NAME = 64


@dataclass(frozen=True)
class CertificateInfo:
    """What a certificate says: validity (timezone-aware UTC), the hosts of its subjectAltName (DNS names, then IP
    addresses), issuer and subject (RFC 4514 strings) and its SHA-256 fingerprint (``AB:CD:...``, as
    ``openssl x509 -fingerprint -sha256`` prints it)."""

    not_after: datetime
    not_before: datetime
    hosts: tuple[str, ...]
    issuer: str
    subject: str
    fingerprint_sha256: str


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its certificate and its private key (PKCS#8), both PEM."""

    certificate_pem: str
    key_pem: str


class _Crypto(NamedTuple):
    """The cryptography modules used here."""

    x509: ModuleType
    oid: ModuleType
    hashes: ModuleType
    serialization: ModuleType
    ec: ModuleType
    exceptions: ModuleType


def _crypto() -> _Crypto:
    return _Crypto(
        require("cryptography.x509", extra="aks"),
        require("cryptography.x509.oid", extra="aks"),
        require("cryptography.hazmat.primitives.hashes", extra="aks"),
        require("cryptography.hazmat.primitives.serialization", extra="aks"),
        require("cryptography.hazmat.primitives.asymmetric.ec", extra="aks"),
        require("cryptography.exceptions", extra="aks"),
    )


# ---- facts -------------------------------------------------------------------------------------------------------
def certificate_info(pem: str | bytes) -> CertificateInfo:
    """The facts of the first certificate in ``pem`` (the leaf of a chain).

    Raises:
        ValueError: ``pem`` holds no PEM certificate.
    """
    crypto = _crypto()
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    return _info(crypto, crypto.x509.load_pem_x509_certificates(data)[0])


def needs_renewal(
    info: CertificateInfo, *, now: datetime | None = None, within: timedelta = timedelta(days=30)
) -> bool:
    """Whether the certificate expires within ``within`` of ``now`` (or has expired)."""
    return _utc(now) + within >= info.not_after


def covers(hosts: tuple[str, ...], host: str) -> bool:
    """Whether a certificate whose subjectAltName lists ``hosts`` is valid for ``host`` (see the module
    docstring for the wildcard rule)."""
    wanted = host.rstrip(".").lower()
    if _is_ip(wanted):
        return any(
            _is_ip(name) and ipaddress.ip_address(name) == ipaddress.ip_address(wanted) for name in hosts
        )
    for name in hosts:
        pattern = name.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "*" not in pattern[2:]:
            label, _, rest = wanted.partition(".")
            if label and rest == pattern[2:]:
                return True
    return False


# ---- issuing -----------------------------------------------------------------------------------------------------
def make_authority(common_name: str, *, now: datetime | None = None, days: int = 3650) -> Authority:
    """A new CA: an EC P-256 key and its self-signed certificate, valid ``days`` from ``now``.

    Raises:
        ValueError: ``common_name`` is empty or over 64 characters, ``days`` below 1, or ``now`` naive.
    """
    if not common_name or len(common_name) > _MAX_COMMON_NAME:
        raise ValueError(f"common_name must hold 1 to {_MAX_COMMON_NAME} characters, got {common_name!r}")
    start, end = _validity(now, days)
    crypto = _crypto()
    x509, key = crypto.x509, crypto.ec.generate_private_key(crypto.ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(crypto.oid.NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(x509, name, name, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(x509, certificate_signing=True), critical=True)
    )
    certificate = builder.sign(key, crypto.hashes.SHA256())
    return Authority(_certificate_pem(crypto, certificate), _key_pem(crypto, key))


def issue_server_certificate(
    authority: Authority, host: str, *, now: datetime | None = None, days: int = SERVER_CERTIFICATE_DAYS
) -> tuple[str, str]:
    """A server certificate for ``host`` signed by ``authority``: ``(certificate PEM, key PEM)``.

    subjectAltName holds ``host`` (a DNS name, a ``*.`` wildcard, or an IP literal), extendedKeyUsage
    ``serverAuth``, basicConstraints ``CA:FALSE``; a new EC P-256 key. Valid ``days`` from ``now`` (397 by
    default, see :data:`SERVER_CERTIFICATE_DAYS`), and never past the authority's own expiry.

    Raises:
        ValueError: ``host`` is empty or not ASCII (give a punycode A-label), ``days`` below 1, ``now`` naive, or
            ``authority`` does not hold a certificate and its key.
    """
    host = host.rstrip(".").lower()
    if not host or not host.isascii():
        raise ValueError(f"host must be an ASCII DNS name or IP address (punycode for IDNs), got {host!r}")
    start, end = _validity(now, days)
    crypto = _crypto()
    x509 = crypto.x509
    issuer = x509.load_pem_x509_certificate(authority.certificate_pem.encode("ascii"))
    issuer_key = crypto.serialization.load_pem_private_key(authority.key_pem.encode("ascii"), password=None)
    key = crypto.ec.generate_private_key(crypto.ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(crypto.oid.NameOID.COMMON_NAME, host)] if len(host) <= _MAX_COMMON_NAME else []
    )
    san = x509.IPAddress(ipaddress.ip_address(host)) if _is_ip(host) else x509.DNSName(host)
    builder = (
        _builder(x509, subject, issuer.subject, key.public_key(), start, min(end, issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(x509, certificate_signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([crypto.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Critical when the subject is empty (RFC 5280 section 4.2.1.6).
        .add_extension(x509.SubjectAlternativeName([san]), critical=len(subject) == 0)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    certificate = builder.sign(issuer_key, crypto.hashes.SHA256())
    return _certificate_pem(crypto, certificate), _key_pem(crypto, key)


# ---- a pair the spec brings --------------------------------------------------------------------------------------
def read_pair(
    cert_file: Path, key_file: Path, *, host: str, field_prefix: str, now: datetime | None = None
) -> tuple[str, str, CertificateInfo]:
    """Read and check (:func:`check_pair`) a certificate and key a spec names.

    Args:
        cert_file, key_file: the PEM files, already resolved against the spec's folder.
        host: the DNS name clients call, which the certificate must cover.
        field_prefix: the spec path of the ``tls`` section (``targets.NAME.tls``); errors name
            ``{field_prefix}.cert_file`` or ``{field_prefix}.key_file``.

    Returns:
        ``(certificate chain PEM, key PEM, facts of the leaf)``, both PEM texts written afresh (the key as
        unencrypted PKCS#8), whatever else the files held around them.

    Raises:
        SpecError: a file is missing or unreadable, or the pair fails a check of :func:`check_pair`.
    """
    certificate_pem = _read(cert_file, f"{field_prefix}.cert_file")
    key_pem = _read(key_file, f"{field_prefix}.key_file")
    crypto = _crypto()
    chain, key, info = _checked_pair(crypto, certificate_pem, key_pem, host=host, field=field_prefix, now=now)
    return "".join(_certificate_pem(crypto, one) for one in chain), _key_pem(crypto, key), info


def check_pair(
    certificate_pem: bytes, key_pem: bytes, *, host: str, field: str, now: datetime | None = None
) -> CertificateInfo:
    """Check a certificate (with its chain, leaf first) and its private key before they are deployed.

    Args:
        certificate_pem, key_pem: the contents of the two PEM files.
        host: the DNS name (or IP) the certificate must cover.
        field: the spec path of the ``tls`` section (``targets.NAME.tls``); each error's ``field`` is
            ``{field}.cert_file`` or ``{field}.key_file``, whichever file is at fault.
        now: the time validity is judged at (default: now).

    Returns:
        The facts of the leaf certificate.

    Raises:
        SpecError: the certificate file holds no PEM certificate; the key file no private key (a certificate, an
            encrypted key); the key is not the certificate's; the certificate has expired or is not valid yet;
            it does not cover ``host``. The message names the field, what is wrong and the fix.
    """
    return _checked_pair(_crypto(), certificate_pem, key_pem, host=host, field=field, now=now)[2]


def _checked_pair(
    crypto: _Crypto, certificate_pem: bytes, key_pem: bytes, *, host: str, field: str, now: datetime | None
) -> tuple[list[Any], Any, CertificateInfo]:
    cert_field, key_field = f"{field}.cert_file", f"{field}.key_file"
    chain = _certificates_in(crypto, certificate_pem, cert_field, key_field)
    key = _private_key_in(crypto, key_pem, key_field, cert_field)
    public = crypto.serialization.PublicFormat.SubjectPublicKeyInfo
    der = crypto.serialization.Encoding.DER
    if chain[0].public_key().public_bytes(der, public) != key.public_key().public_bytes(der, public):
        raise SpecError(
            f"{key_field} is not the key of {cert_field}: the certificate was issued for another key; give the "
            "private key the certificate was made with",
            field=key_field,
        )
    info = _info(crypto, chain[0])
    _check_validity(info, _utc(now), cert_field)
    if not covers(info.hosts, host):
        named = ", ".join(info.hosts) if info.hosts else "no host at all (it has no subjectAltName)"
        raise SpecError(
            f"{cert_field} does not cover host {host!r}: it is valid for {named}; set host: to one of those, or "
            f"bring a certificate whose subjectAltName holds {host}",
            field=cert_field,
        )
    return chain, key, info


def _certificates_in(crypto: _Crypto, data: bytes, field: str, key_field: str) -> list[Any]:
    try:
        return list(crypto.x509.load_pem_x509_certificates(data))
    except ValueError:
        pass
    if b"PRIVATE KEY-----" in data:
        hint = f"it holds a private key: did you swap it with {key_field}?"
    elif data[:1] == b"\x30":  # a DER SEQUENCE
        hint = "it looks like DER: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"
    else:
        hint = "give the server certificate, then its intermediates, in PEM"
    raise SpecError(f"{field} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {hint}", field=field)


def _private_key_in(crypto: _Crypto, data: bytes, field: str, cert_field: str) -> Any:
    try:
        return crypto.serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        hint = (
            "it is encrypted with a passphrase; the Gateway reads it from a Kubernetes Secret without one, so give "
            "it decrypted (`openssl pkey -in KEY -out KEY.plain`)"
        )
    except (ValueError, crypto.exceptions.UnsupportedAlgorithm):
        if b"-----BEGIN CERTIFICATE-----" in data:
            hint = f"it holds a certificate, not a private key: give the key of {cert_field} (swapped files?)"
        else:
            hint = "give the certificate's private key in PEM (-----BEGIN PRIVATE KEY----- or EC/RSA PRIVATE KEY)"
    raise SpecError(f"{field} holds no usable private key: {hint}", field=field)


def _check_validity(info: CertificateInfo, now: datetime, field: str) -> None:
    if now >= info.not_after:
        days = (now - info.not_after).days
        raise SpecError(
            f"{field} expired on {_when(info.not_after)} ({days} day{'s' * (days != 1)} ago): renew it, or write "
            "tls: auto to let endpointkit issue and renew one",
            field=field,
        )
    if now < info.not_before:
        raise SpecError(
            f"{field} is not valid until {_when(info.not_before)}: check the clock of the machine that issued it, "
            "or wait until then",
            field=field,
        )


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{field}: no file at {path}; give the path of a PEM file", field=field) from None
    except IsADirectoryError:
        raise SpecError(f"{field}: {path} is a folder, not a PEM file", field=field) from None
    except OSError as error:
        reason = error.strerror or error
        raise SpecError(
            f"{field}: {path} cannot be read ({reason}); check its permissions", field=field
        ) from None


# ---- helpers -----------------------------------------------------------------------------------------------------
def _info(crypto: _Crypto, certificate: Any) -> CertificateInfo:
    x509 = crypto.x509
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        hosts: tuple[str, ...] = ()
    else:
        dns = names.get_values_for_type(x509.DNSName)
        hosts = (*dns, *(str(address) for address in names.get_values_for_type(x509.IPAddress)))
    return CertificateInfo(
        not_after=certificate.not_valid_after_utc,
        not_before=certificate.not_valid_before_utc,
        hosts=hosts,
        issuer=certificate.issuer.rfc4514_string(),
        subject=certificate.subject.rfc4514_string(),
        fingerprint_sha256=certificate.fingerprint(crypto.hashes.SHA256()).hex(":").upper(),
    )


def _builder(
    x509: ModuleType, subject: Any, issuer: Any, public_key: Any, start: datetime, end: datetime
) -> Any:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(x509: ModuleType, *, certificate_signing: bool) -> Any:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate_pem(crypto: _Crypto, certificate: Any) -> str:
    return str(certificate.public_bytes(crypto.serialization.Encoding.PEM).decode("ascii"))


def _key_pem(crypto: _Crypto, key: Any) -> str:
    serialization = crypto.serialization
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return str(data.decode("ascii"))


def _validity(now: datetime | None, days: int) -> tuple[datetime, datetime]:
    if type(days) is not int or days < 1:
        raise ValueError(f"days must be an integer >= 1, got {days!r}")
    start = _utc(now)
    return start - _CLOCK_SKEW, start + timedelta(days=days)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (datetime.now(timezone.utc))")
    return now.astimezone(timezone.utc)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
