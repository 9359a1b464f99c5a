"""Certificates of AKS endpoints: the authority and server certificates endpointkit issues, and the checks of a
certificate and key pair a spec brings, each failure named with its field and fix."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from endpointkit.adapters.aks._certificates import (
    SERVER_CERTIFICATE_DAYS,
    Authority,
    certificate_info,
    check_pair,
    covers,
    issue_server_certificate,
    make_authority,
    needs_renewal,
    read_pair,
)
from endpointkit.errors import SpecError

HOST = "triton.example.test"
FIELD = "targets.prod.tls"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return make_authority("endpointkit test CA", now=NOW)


@pytest.fixture(scope="module")
def pair(authority: Authority) -> tuple[str, str]:
    return issue_server_certificate(authority, HOST, now=NOW)


def check(certificate: str | bytes, key: str | bytes, *, host: str = HOST, now: datetime = NOW) -> None:
    as_bytes = [value.encode() if isinstance(value, str) else value for value in (certificate, key)]
    check_pair(as_bytes[0], as_bytes[1], host=host, field=FIELD, now=now)


# ---- what is issued ----------------------------------------------------------------------------------------------
def test_the_authority_is_a_p256_ca_that_signs_certificates_and_nothing_below_them(
    authority: Authority,
) -> None:
    certificate = x509.load_pem_x509_certificate(authority.certificate_pem.encode())

    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    key = certificate.public_key()
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert usage.key_cert_sign
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert certificate.issuer == certificate.subject
    assert certificate.not_valid_after_utc - NOW == timedelta(days=3650)
    assert certificate.not_valid_before_utc <= NOW


def test_the_authority_key_is_its_certificates(authority: Authority) -> None:
    key = serialization.load_pem_private_key(authority.key_pem.encode(), password=None)
    certificate = x509.load_pem_x509_certificate(authority.certificate_pem.encode())

    assert key.public_key() == certificate.public_key()


def test_a_server_certificate_names_its_host_for_server_auth_and_is_no_ca(
    authority: Authority, pair: tuple[str, str]
) -> None:
    certificate = x509.load_pem_x509_certificate(pair[0].encode())
    extensions = certificate.extensions

    assert extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [HOST]
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert not extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert (
        certificate.not_valid_after_utc - NOW
        == timedelta(days=SERVER_CERTIFICATE_DAYS)
        == timedelta(days=397)
    )


def test_a_server_certificate_is_signed_by_its_authority(authority: Authority, pair: tuple[str, str]) -> None:
    issuer = x509.load_pem_x509_certificate(authority.certificate_pem.encode())
    certificate = x509.load_pem_x509_certificate(pair[0].encode())

    certificate.verify_directly_issued_by(issuer)  # raises when it is not


def test_a_server_certificate_ends_with_its_authority(authority: Authority) -> None:
    short_lived = make_authority("short-lived CA", now=NOW, days=30)

    certificate, _ = issue_server_certificate(short_lived, HOST, now=NOW)

    assert certificate_info(certificate).not_after == certificate_info(short_lived.certificate_pem).not_after


def test_a_server_certificate_for_an_ip_names_it_as_an_address(authority: Authority) -> None:
    certificate, _ = issue_server_certificate(authority, "127.0.0.1", now=NOW)

    names = x509.load_pem_x509_certificate(certificate.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_certificate_info_reads_validity_hosts_names_and_fingerprint(
    authority: Authority, pair: tuple[str, str]
) -> None:
    info = certificate_info(pair[0])
    certificate = x509.load_pem_x509_certificate(pair[0].encode())

    assert info.hosts == (HOST,)
    assert info.subject == f"CN={HOST}" and info.issuer == "CN=endpointkit test CA"
    assert info.not_after == NOW + timedelta(days=397) and info.not_before < NOW
    assert info.fingerprint_sha256 == certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert certificate_info(pair[0].encode()) == info


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_authority("CA", now=datetime(2030, 1, 1))


# ---- renewal -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("left", "renew"),
    [
        (timedelta(days=31), False),
        (timedelta(days=30), True),
        (timedelta(days=1), True),
        (-timedelta(days=1), True),
    ],
    ids=["31-days-left", "30-days-left", "1-day-left", "expired"],
)
def test_renewal_is_due_within_30_days_of_expiry(pair: tuple[str, str], left: timedelta, renew: bool) -> None:
    info = certificate_info(pair[0])

    assert needs_renewal(info, now=info.not_after - left) is renew


def test_the_renewal_window_can_be_widened(pair: tuple[str, str]) -> None:
    info = certificate_info(pair[0])

    assert needs_renewal(info, now=info.not_after - timedelta(days=45), within=timedelta(days=60))


# ---- host coverage -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "covered"),
    [
        ("a.example.test", True),
        ("A.Example.Test", True),
        ("example.test", False),
        ("a.b.example.test", False),
        ("a.example.other", False),
    ],
)
def test_a_wildcard_stands_for_exactly_the_left_most_label(host: str, covered: bool) -> None:
    assert covers(("*.example.test",), host) is covered


def test_a_wildcard_certificate_passes_for_a_host_one_label_below(authority: Authority) -> None:
    certificate, key = issue_server_certificate(authority, "*.example.test", now=NOW)

    check(certificate, key, host="triton.example.test")
    with pytest.raises(SpecError, match=r"does not cover host 'example\.test'"):
        check(certificate, key, host="example.test")


def test_an_ip_host_needs_an_ip_entry(authority: Authority) -> None:
    assert covers(("127.0.0.1",), "127.0.0.1")
    assert not covers(("*.0.0.1",), "127.0.0.1")


# ---- a pair the spec brings --------------------------------------------------------------------------------------
def test_a_good_pair_passes_and_says_what_it_holds(pair: tuple[str, str]) -> None:
    info = check_pair(pair[0].encode(), pair[1].encode(), host=HOST, field=FIELD, now=NOW)

    assert info == certificate_info(pair[0])


def test_a_chain_passes_with_the_leaf_first(authority: Authority, pair: tuple[str, str]) -> None:
    info = check_pair(
        (pair[0] + authority.certificate_pem).encode(), pair[1].encode(), host=HOST, field=FIELD, now=NOW
    )

    assert info.hosts == (HOST,)


def test_a_certificate_file_without_a_certificate_is_named(pair: tuple[str, str]) -> None:
    with pytest.raises(SpecError, match=rf"^{FIELD}\.cert_file holds no PEM certificate") as raised:
        check(b"not a certificate\n", pair[1])

    assert raised.value.field == f"{FIELD}.cert_file"


def test_a_der_certificate_gets_the_conversion_command(pair: tuple[str, str]) -> None:
    der = x509.load_pem_x509_certificate(pair[0].encode()).public_bytes(serialization.Encoding.DER)

    with pytest.raises(SpecError, match="looks like DER: convert it with `openssl x509 -inform der"):
        check(der, pair[1])


def test_swapped_files_are_named_as_swapped(pair: tuple[str, str]) -> None:
    with pytest.raises(SpecError, match=rf"{FIELD}\.cert_file .* holds a private key: did you swap"):
        check(pair[1], pair[0])


def test_a_certificate_given_as_the_key_is_named(pair: tuple[str, str]) -> None:
    with pytest.raises(
        SpecError, match=rf"^{FIELD}\.key_file holds no usable private key: it holds a certificate"
    ):
        check(pair[0], pair[0])


def test_an_encrypted_key_asks_for_it_decrypted(pair: tuple[str, str]) -> None:
    key = serialization.load_pem_private_key(pair[1].encode(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )

    with pytest.raises(
        SpecError, match=r"key_file holds no usable private key: it is encrypted.*openssl pkey"
    ) as raised:
        check(pair[0], encrypted)
    assert raised.value.field == f"{FIELD}.key_file"


def test_a_key_of_another_certificate_is_named(authority: Authority, pair: tuple[str, str]) -> None:
    _, other_key = issue_server_certificate(authority, HOST, now=NOW)

    with pytest.raises(
        SpecError, match=rf"^{FIELD}\.key_file is not the key of {FIELD}\.cert_file"
    ) as raised:
        check(pair[0], other_key)
    assert raised.value.field == f"{FIELD}.key_file"


def test_an_expired_certificate_says_when(pair: tuple[str, str]) -> None:
    expiry = certificate_info(pair[0]).not_after

    with pytest.raises(
        SpecError, match=rf"cert_file expired on {expiry:%Y-%m-%d %H:%M} UTC \(3 days ago\): renew"
    ):
        check(*pair, now=expiry + timedelta(days=3))


def test_a_certificate_not_valid_yet_says_from_when(pair: tuple[str, str]) -> None:
    start = certificate_info(pair[0]).not_before

    with pytest.raises(SpecError, match=rf"cert_file is not valid until {start:%Y-%m-%d %H:%M} UTC"):
        check(*pair, now=start - timedelta(days=1))


def test_a_host_the_certificate_does_not_cover_names_the_hosts_it_does(pair: tuple[str, str]) -> None:
    with pytest.raises(
        SpecError,
        match=rf"cert_file does not cover host 'other\.example\.test': it is valid for {HOST}; set host:",
    ) as raised:
        check(*pair, host="other.example.test")
    assert raised.value.field == f"{FIELD}.cert_file"


# ---- files -------------------------------------------------------------------------------------------------------
def test_read_pair_returns_clean_pem_and_the_facts(tmp_path: Path, pair: tuple[str, str]) -> None:
    (tmp_path / "tls.crt").write_text("a comment before the block\n" + pair[0])
    (tmp_path / "tls.key").write_text(pair[1])

    certificate, key, info = read_pair(
        tmp_path / "tls.crt", tmp_path / "tls.key", host=HOST, field_prefix=FIELD, now=NOW
    )

    assert certificate == pair[0] and key == pair[1]
    assert info == certificate_info(pair[0])


def test_a_missing_file_names_its_field(tmp_path: Path, pair: tuple[str, str]) -> None:
    (tmp_path / "tls.crt").write_text(pair[0])

    with pytest.raises(SpecError, match=rf"^{FIELD}\.key_file: no file at .*missing\.key") as raised:
        read_pair(tmp_path / "tls.crt", tmp_path / "missing.key", host=HOST, field_prefix=FIELD, now=NOW)
    assert raised.value.field == f"{FIELD}.key_file"


def test_a_folder_given_as_a_file_names_its_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=rf"^{FIELD}\.cert_file: .* is a folder, not a PEM file"):
        read_pair(tmp_path, tmp_path / "tls.key", host=HOST, field_prefix=FIELD, now=NOW)


def test_read_pair_checks_what_it_reads(tmp_path: Path, pair: tuple[str, str]) -> None:
    (tmp_path / "tls.crt").write_text(pair[0])
    (tmp_path / "tls.key").write_text(pair[1])

    with pytest.raises(SpecError, match="does not cover host"):
        read_pair(
            tmp_path / "tls.crt", tmp_path / "tls.key", host="other.example.test", field_prefix=FIELD, now=NOW
        )
