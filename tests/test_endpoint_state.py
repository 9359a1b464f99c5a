"""The endpoint-state leaf: one expiry codec for every target, and a module that imports nothing from endpointkit.

The forms below marked "written by" are the exact output of the writers earlier versions shipped, so endpoints
already deployed keep their expiry: ``naming.managed_tags`` (SageMaker tags, memory),
``aks._render.expiry_label`` (Kubernetes labels) and the local adapter's ``endpoint.json`` field.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import endpointkit
from endpointkit import _endpoint_state
from endpointkit._endpoint_state import (
    EXPIRES_AT_TAG,
    EndpointState,
    EndpointStatus,
    VariantState,
    decode_expiry,
    encode_expiry,
)
from endpointkit.adapters import base

MOMENT = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
PACKAGE = Path(endpointkit.__file__).parent

# Kubernetes label values: at most 63 characters, alphanumerics with "-", "_", "." inside
# (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# AWS tag values: letters, digits, spaces and _ . : / = + - @, at most 256 characters
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html).
AWS_TAG_VALUE = re.compile(r"[\w .:/=+\-@]{0,256}")


# ---- writing ----------------------------------------------------------------------------------------------------
def test_the_written_form_is_basic_iso_8601_utc() -> None:
    assert encode_expiry(MOMENT) == "20300101T120000Z"


def test_writing_converts_to_utc_drops_fractions_and_takes_naive_as_utc() -> None:
    assert (
        encode_expiry(datetime(2030, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == "20300101T120000Z"
    )
    assert encode_expiry(datetime(2030, 1, 1, 12, 0, 0, 999_999, tzinfo=timezone.utc)) == "20300101T120000Z"
    assert encode_expiry(datetime(2030, 1, 1, 12, 0)) == "20300101T120000Z"
    assert encode_expiry(datetime(999, 3, 4, 5, 6, 7, tzinfo=timezone.utc)) == "09990304T050607Z"


@pytest.mark.parametrize(
    "moment",
    [MOMENT, datetime(2028, 2, 29, 23, 59, 59, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59)],
)
def test_the_written_form_is_a_valid_label_tag_and_json_string(moment: datetime) -> None:
    written = encode_expiry(moment)
    assert LABEL_VALUE.fullmatch(written) and ":" not in written
    assert AWS_TAG_VALUE.fullmatch(written)
    assert json.loads(json.dumps(written)) == written


# ---- reading ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "written",
    [
        pytest.param(encode_expiry(MOMENT), id="this-codec"),
        pytest.param(MOMENT.strftime("%Y-%m-%dT%H:%M:%SZ"), id="written-by-naming.managed_tags"),
        pytest.param(MOMENT.strftime("%Y%m%dT%H%M%SZ"), id="written-by-aks-expiry_label"),
        pytest.param(MOMENT.isoformat(), id="written-by-local-endpoint.json"),
    ],
)
def test_every_form_ever_written_reads_as_the_same_moment(written: str) -> None:
    decoded = decode_expiry(written, endpoint="e")
    assert decoded == MOMENT and decoded.tzinfo is timezone.utc


@pytest.mark.parametrize(
    "text",
    [
        "2030-01-01T14:00:00+02:00",
        "2030-01-01T07:30:00-04:30",
        "20300101T140000+0200",
        "2030-01-01T14:00:00+02",
        "2030-01-01T12:00:00",  # naive: the value is documented as UTC
        "20300101T120000",
        "2030-01-01T12:00Z",  # no seconds
        "2030-01-01T12:00:00.000000Z",
        "2030-01-01T12:00:00,0Z",
        "2030-01-01 12:00:00Z",
        "2030-01-01t12:00:00z",
        "  2030-01-01T12:00:00Z\n",
    ],
)
def test_offsets_naive_times_and_iso_variants_read_as_utc(text: str) -> None:
    assert decode_expiry(text, endpoint="e") == MOMENT


def test_a_fraction_of_a_second_is_kept_to_the_microsecond() -> None:
    assert decode_expiry("2030-01-01T12:00:00.1234567Z", endpoint="e") == MOMENT.replace(microsecond=123456)


@pytest.mark.parametrize("absent", [None, "", "   "])
def test_no_value_is_no_expiry_without_a_warning(
    absent: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert decode_expiry(absent, endpoint="e") is None
    assert caplog.records == []


@pytest.mark.parametrize(
    "garbage",
    [
        "next tuesday",
        "2030-01-01",  # a date is not a time
        "2030-13-01T00:00:00Z",  # month 13
        "2030-02-30T00:00:00Z",
        "2030-01-01T24:00:00Z",
        "2030-01-01T12:00:60Z",
        "20300101T12:00:00Z",  # basic date, extended time
        "2030-01-01T120000Z",  # extended date, basic time
        "2030-01-01T12:00:00+24:00",  # offset out of range
        "2030-01-01T12:00:00+02:60",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:00:00-02:00",  # after year 9999 in UTC
        "2030-01-01T12:00:00Z trailing",
        "1893456000",  # epoch seconds
        "\u0662\u0660\u0663\u0660-01-01T12:00:00Z",  # Arabic-Indic digits
    ],
)
def test_an_unreadable_value_is_no_expiry_and_a_warning_naming_the_endpoint(
    garbage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert decode_expiry(garbage, endpoint="vision") is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"endpoint vision has an unreadable {EXPIRES_AT_TAG} tag {garbage!r}" in record.getMessage()


@pytest.mark.parametrize(
    "moment",
    [
        MOMENT,
        datetime(2028, 2, 29, 23, 59, 59, 500_000, tzinfo=timezone.utc),
        datetime(2030, 6, 1, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7))),
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    ],
)
def test_round_trip_keeps_the_moment_to_the_second(moment: datetime) -> None:
    written = encode_expiry(moment)
    assert decode_expiry(written, endpoint="e") == moment.replace(microsecond=0)
    decoded = decode_expiry(written, endpoint="e")
    assert decoded is not None and encode_expiry(decoded) == written


# ---- the leaf ---------------------------------------------------------------------------------------------------
def endpointkit_imports(path: Path) -> set[str]:
    """Every endpointkit module ``path`` imports, TYPE_CHECKING blocks and function bodies included."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
        elif isinstance(node, ast.ImportFrom):  # relative: always inside the package
            imported.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return {name for name in imported if name.startswith(("endpointkit", "."))}


def test_the_leaf_imports_nothing_from_endpointkit_and_errors_only_the_leaf() -> None:
    assert endpointkit_imports(PACKAGE / "_endpoint_state.py") == set()
    assert endpointkit_imports(PACKAGE / "errors.py") <= {"endpointkit._endpoint_state"}


def test_the_state_vocabulary_is_re_exported_unchanged() -> None:
    for name in ("EndpointState", "EndpointStatus", "VariantState"):
        assert getattr(base, name) is getattr(_endpoint_state, name) is getattr(endpointkit, name)
    for name in ("MANAGED_BY_TAG", "MANAGED_BY_VALUE", "SPEC_HASH_TAG", "EXPIRES_AT_TAG"):
        assert getattr(base, name) == getattr(_endpoint_state, name)


def test_a_state_prints_its_expiry_as_iso_8601() -> None:
    state = EndpointState(
        "vision",
        "aws",
        "sagemaker",
        EndpointStatus.IN_SERVICE,
        variants=(VariantState("primary", "ml.g4dn.xlarge", 1, 1.0),),
        expires_at=MOMENT,
    )
    document = state.to_dict()
    assert document["expires_at"] == "2030-01-01T12:00:00+00:00"
    assert document["status"] == "IN_SERVICE" and document["variants"][0]["name"] == "primary"
