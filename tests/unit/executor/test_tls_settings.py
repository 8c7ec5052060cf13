"""TLS settings: half a configuration, or an unusable file, stops the service at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from executor_service.cli.app import app
from executor_service.settings import ExecutorSettings
from memory_service.servicekit.tls import ReloadingServerCertificates, ServerTlsFiles
from memory_service.settings import MemorySettings
from tests.support.tls_certs import CertificateAuthority, Issued


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def server(ca: CertificateAuthority) -> Issued:
    return ca.server()


def memory(tmp_path: Path, **settings: object) -> MemorySettings:
    return MemorySettings(data_dir=tmp_path / "memory", auth_disabled=True, **settings)  # type: ignore[arg-type]


def error_of(build: object) -> str:
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    return str(caught.value)


@pytest.mark.parametrize(
    ("given", "missing"),
    [("tls_cert_file", "MEMORY_TLS_KEY_FILE"), ("tls_key_file", "MEMORY_TLS_CERT_FILE")],
)
def test_half_a_pair_names_both_settings(
    tmp_path: Path, server: Issued, given: str, missing: str
) -> None:
    path = server.cert if given == "tls_cert_file" else server.key
    message = error_of(lambda: memory(tmp_path, **{given: path}))
    assert f"MEMORY_{given.upper()} is set without {missing}" in message


def test_executor_settings_are_named_with_their_own_prefix(tmp_path: Path, server: Issued) -> None:
    message = error_of(lambda: ExecutorSettings(data_dir=tmp_path, tls_key_file=server.key))
    assert "EXECUTOR_TLS_KEY_FILE is set without EXECUTOR_TLS_CERT_FILE" in message


def test_client_ca_without_a_certificate_is_refused(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    message = error_of(lambda: memory(tmp_path, tls_client_ca_file=ca.cert))
    assert "MEMORY_TLS_CLIENT_CA_FILE needs MEMORY_TLS_CERT_FILE" in message


@pytest.mark.parametrize("which", ["tls_cert_file", "tls_key_file", "tls_client_ca_file"])
def test_an_unreadable_file_names_its_setting(tmp_path: Path, server: Issued, which: str) -> None:
    ca_file = server.cert.parent / "ca.pem"
    paths: dict[str, object] = {
        "tls_cert_file": server.cert,
        "tls_key_file": server.key,
        "tls_client_ca_file": ca_file,
    }
    paths[which] = tmp_path / "missing.pem"
    message = error_of(lambda: memory(tmp_path, **paths))
    assert f"MEMORY_{which.upper()}: cannot read" in message
    assert "No such file" in message


def test_a_key_of_another_certificate_is_refused(
    tmp_path: Path, ca: CertificateAuthority, server: Issued
) -> None:
    other = ca.server("other")
    message = error_of(lambda: memory(tmp_path, tls_cert_file=server.cert, tls_key_file=other.key))
    assert "MEMORY_TLS_KEY_FILE does not match the certificate in MEMORY_TLS_CERT_FILE" in message


def test_the_key_never_shows_in_the_error(tmp_path: Path, server: Issued) -> None:
    message = error_of(lambda: memory(tmp_path, tls_cert_file=server.key, tls_key_file=server.key))
    assert "MEMORY_TLS_CERT_FILE: not a PEM certificate" in message
    assert "PRIVATE KEY" not in message


def test_plaintext_beyond_loopback_must_be_chosen(tmp_path: Path, server: Issued) -> None:
    message = error_of(lambda: memory(tmp_path, host="0.0.0.0"))
    assert "MEMORY_PLAINTEXT_ALLOWED=true" in message
    assert "MEMORY_TLS_CERT_FILE" in message
    assert memory(tmp_path, host="0.0.0.0", plaintext_allowed=True).tls_files is None
    secured = memory(tmp_path, host="0.0.0.0", tls_cert_file=server.cert, tls_key_file=server.key)
    assert secured.tls_files is not None
    assert memory(tmp_path).tls_files is None  # Loopback: the development default.


def test_executor_memory_tls_half_a_pair_and_missing_ca(tmp_path: Path, server: Issued) -> None:
    message = error_of(lambda: ExecutorSettings(data_dir=tmp_path, memory_tls_key_file=server.key))
    assert "EXECUTOR_MEMORY_TLS_KEY_FILE is set without EXECUTOR_MEMORY_TLS_CERT_FILE" in message
    missing = tmp_path / "nope.pem"
    message = error_of(lambda: ExecutorSettings(data_dir=tmp_path, memory_tls_ca_file=missing))
    assert "EXECUTOR_MEMORY_TLS_CA_FILE: cannot read" in message
    assert ExecutorSettings(data_dir=tmp_path).memory_tls is None


def test_a_half_rotated_pair_keeps_the_last_good_one(
    tmp_path: Path, ca: CertificateAuthority, server: Issued
) -> None:
    live_cert, live_key = tmp_path / "tls.crt", tmp_path / "tls.key"
    live_cert.write_bytes(server.cert_pem)
    live_key.write_bytes(server.key_pem)
    certificates = ReloadingServerCertificates(ServerTlsFiles(live_cert, live_key, None, "X_"))
    assert certificates.fetch() is None  # Nothing changed.
    new = ca.server("new")
    live_cert.write_bytes(new.cert_pem)  # The key is not rotated yet.
    os.utime(live_cert, ns=(1, 1))
    assert certificates.fetch() is None
    assert certificates.reloads == 0
    live_key.write_bytes(new.key_pem)
    assert certificates.fetch() is not None
    assert certificates.reloads == 1
    assert certificates.fetch() is None


def test_cli_refuses_half_a_client_pair_before_sending(server: Issued) -> None:
    result = CliRunner().invoke(app, ["--tls-cert", str(server.cert), "templates", "list"])
    assert result.exit_code == 2
    assert "--tls-cert is set without --tls-key" in result.output
