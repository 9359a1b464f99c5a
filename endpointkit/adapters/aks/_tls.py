"""Which CA bundle the Azure and Kubernetes clients trust, from the usual environment variables.

azure-core's requests transport honours ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` (requests'
``Session.merge_environment_settings``) but not ``SSL_CERT_FILE``, which OpenSSL, curl and httpx read; the
kubernetes client reads neither (it trusts the kubeconfig's CA, else certifi). These helpers fill the gaps
without overriding anything the caller or requests already decides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["azure_verify_options", "environment_ca_bundle"]

# requests' own order (requests/sessions.py, merge_environment_settings), then OpenSSL's variable.
_REQUESTS_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_OPENSSL_VARIABLE = "SSL_CERT_FILE"


def environment_ca_bundle() -> str | None:
    """The CA bundle the environment names: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, then ``SSL_CERT_FILE``."""
    for variable in (*_REQUESTS_VARIABLES, _OPENSSL_VARIABLE):
        value = os.environ.get(variable)
        if value:
            return value
    return None


def azure_verify_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for an azure-core client, with ``connection_verify=$SSL_CERT_FILE`` added when that is the
    only CA setting: no explicit ``connection_verify`` and neither variable requests reads itself."""
    merged = dict(options)
    if "connection_verify" in merged or any(os.environ.get(v) for v in _REQUESTS_VARIABLES):
        return merged
    bundle = os.environ.get(_OPENSSL_VARIABLE)
    if bundle:
        merged["connection_verify"] = bundle
    return merged
