"""The AKS adapter trusts the CA bundle the usual environment variables name, on the local fakes.

azure-core's requests transport reads REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE itself but not SSL_CERT_FILE; the
kubernetes client reads none of them. The fakes serve HTTPS with a throwaway CA, so a client trusts them only
through one of these settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import endpointkit as ek
from endpointkit.adapters.aks._storage import default_container_factory
from endpointkit.adapters.aks._tls import azure_verify_options
from endpointkit.adapters.base import EndpointStatus
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]

_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in _VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_ssl_cert_file_alone_lets_arm_calls_through(
    azure: FakeAzure, repository: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    spec = aks_spec(repository, azure.arm.url)
    target = spec.targets["azure"]
    with (
        azure.adapter(target, arm_options={"polling_interval": 0}) as adapter,
        pytest.raises(ek.ProviderError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        ek.plan(spec, adapter=adapter)
    clean_environment.setenv("SSL_CERT_FILE", str(azure.tls.ca_file))
    with azure.adapter(target, arm_options={"polling_interval": 0}) as adapter:
        assert ek.apply(spec, adapter=adapter).status is EndpointStatus.IN_SERVICE
        assert azure.arm.writes  # cluster and pool made over the SSL_CERT_FILE-trusted connection


def test_explicit_verify_and_the_requests_variables_take_precedence(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_environment.setenv("SSL_CERT_FILE", str(tmp_path / "openssl.pem"))
    assert azure_verify_options({}) == {"connection_verify": str(tmp_path / "openssl.pem")}
    assert azure_verify_options({"connection_verify": False}) == {"connection_verify": False}
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        with clean_environment.context() as scoped:
            scoped.setenv(variable, str(tmp_path / "requests.pem"))
            assert azure_verify_options({"polling_interval": 0}) == {"polling_interval": 0}
    clean_environment.delenv("SSL_CERT_FILE")
    assert azure_verify_options({}) == {}


def test_blob_clients_trust_ssl_cert_file(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = str(tmp_path / "ca.pem")
    clean_environment.setenv("SSL_CERT_FILE", bundle)
    key = "a2V5a2V5a2V5a2V5"
    container = default_container_factory()("mymodels", key, "models")
    try:
        assert container._pipeline._transport.connection_config.verify == bundle
    finally:
        container.close()
    explicit = default_container_factory(connection_verify=False)("mymodels", key, "models")
    try:
        assert explicit._pipeline._transport.connection_config.verify is False
    finally:
        explicit.close()


def test_a_kubeconfig_without_a_ca_trusts_the_environment_bundle(
    azure: FakeAzure, repository: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    spec = aks_spec(repository, azure.arm.url)
    with azure.adapter(spec.targets["azure"]) as adapter:
        ek.apply(spec, adapter=adapter)
    with_ca = azure.arm.kubeconfig

    def without_ca() -> dict[str, object]:
        config = with_ca()
        for cluster in config["clusters"]:
            del cluster["cluster"]["certificate-authority-data"]
        return config

    azure.arm.kubeconfig = without_ca
    with azure.adapter(spec.targets["azure"]) as adapter, pytest.raises(ek.ProviderError):
        ek.status(spec, adapter=adapter)
    clean_environment.setenv("SSL_CERT_FILE", str(azure.tls.ca_file))
    with azure.adapter(spec.targets["azure"]) as adapter:
        state = ek.status(spec, adapter=adapter)
        assert state is not None and state.status is EndpointStatus.IN_SERVICE
