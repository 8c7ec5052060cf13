"""TLS for the servers and their clients, from PEM files.

A server's certificate, key and client CA are re-read when the files change
(cert-manager and Kubernetes rotate mounted Secrets in place, by a symlink
swap): gRPC asks for the current configuration on every new handshake, so
new connections get the new certificate while open ones carry on with the
old. A half-rotated pair (a certificate whose key is not yet the new one) is
not taken: the last good pair stays until both files agree.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger("attune.tls")

# Hosts that only this machine can reach: plaintext there needs no opt-in.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


class TlsConfigError(ValueError):
    """A TLS file is missing, unreadable or not what its setting says; the message names it."""


def read_pem(path: Path, setting: str) -> bytes:
    """The file's bytes; TlsConfigError naming the setting if it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TlsConfigError(f"{setting}: cannot read {path}: {error.strerror}") from None
    if not data.strip():
        raise TlsConfigError(f"{setting}: {path} is empty")
    return data


def check_pair(chain: bytes, key: bytes, cert_setting: str, key_setting: str) -> None:
    """TlsConfigError unless the key is a PEM private key matching the chain's first certificate."""
    try:
        certificate = x509.load_pem_x509_certificates(chain)[0]
    except ValueError:
        raise TlsConfigError(f"{cert_setting}: not a PEM certificate") from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise TlsConfigError(f"{key_setting}: not an unencrypted PEM private key") from None
    if _public(certificate.public_key()) != _public(private_key.public_key()):
        raise TlsConfigError(f"{key_setting} does not match the certificate in {cert_setting}")


def check_both_or_neither(
    cert_file: Path | None, key_file: Path | None, cert_setting: str, key_setting: str
) -> None:
    """TlsConfigError if only one of a certificate and its key is given."""
    if (cert_file is None) != (key_file is None):
        given, missing = (
            (cert_setting, key_setting) if key_file is None else (key_setting, cert_setting)
        )
        raise TlsConfigError(f"{given} is set without {missing}: set both, or neither")


def check_certificates(data: bytes, setting: str) -> None:
    """TlsConfigError unless the bytes hold at least one PEM certificate."""
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsConfigError(f"{setting}: not a PEM certificate bundle") from None


def _public(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class ServerTlsFiles:
    """Where a server's TLS material lives, and the settings that name each file."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    prefix: str  # e.g. "MEMORY_", so errors name the setting to fix

    def setting(self, name: str) -> str:
        return f"{self.prefix}TLS_{name}"


@dataclass(frozen=True)
class _Material:
    chain: bytes
    key: bytes = field(repr=False)
    client_ca: bytes | None


def _signature(path: Path) -> tuple[int, int, int]:
    # stat follows the symlink Kubernetes swaps, so a rotation changes this.
    status = os.stat(path)
    return (status.st_ino, status.st_mtime_ns, status.st_size)


class ReloadingServerCertificates:
    """A server's certificate configuration, re-read when its files change."""

    def __init__(self, files: ServerTlsFiles) -> None:
        self.files = files
        self._current = self._load()  # At start, a bad file is an error, not a warning.
        self._signatures = self._stat()
        self.reloads = 0

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        paths = [self.files.cert_file, self.files.key_file]
        if self.files.client_ca_file is not None:
            paths.append(self.files.client_ca_file)
        return tuple(_signature(path) for path in paths)

    def _load(self) -> _Material:
        files = self.files
        chain = read_pem(files.cert_file, files.setting("CERT_FILE"))
        key = read_pem(files.key_file, files.setting("KEY_FILE"))
        check_pair(chain, key, files.setting("CERT_FILE"), files.setting("KEY_FILE"))
        client_ca = None
        if files.client_ca_file is not None:
            client_ca = read_pem(files.client_ca_file, files.setting("CLIENT_CA_FILE"))
            check_certificates(client_ca, files.setting("CLIENT_CA_FILE"))
        return _Material(chain, key, client_ca)

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """The configuration of the material currently served."""
        material = self._current
        return grpc.ssl_server_certificate_configuration(
            [(material.key, material.chain)], root_certificates=material.client_ca
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake hook: a new configuration if the files changed, else None.

        Cheap when nothing changed (three stats). Never raises: a file caught
        mid-rotation, or missing, keeps the last good configuration until the
        next handshake looks again.
        """
        try:
            signatures = self._stat()
            if signatures == self._signatures:
                return None
            material = self._load()
        except (OSError, TlsConfigError) as error:
            log.warning("TLS files changed but cannot be used yet: %s", error)
            return None
        self._signatures = signatures
        if material == self._current:
            return None
        self._current = material
        self.reloads += 1
        log.info("TLS certificate reloaded", extra={"path": str(self.files.cert_file)})
        return self.configuration()

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that reload; mutual TLS when a client CA is given."""
        return grpc.dynamic_ssl_server_credentials(
            self.configuration(),
            self.fetch,  # type: ignore[arg-type]  # None means "no change"; the stubs omit it.
            require_client_authentication=self.files.client_ca_file is not None,
        )


@dataclass(frozen=True)
class ClientTls:
    """A client's TLS material: the CA to trust, and its own certificate for mutual TLS."""

    ca: bytes | None
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)  # No log or traceback shows it.
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def options(self) -> list[tuple[str, str]]:
        """Channel options: the name the server's certificate must carry, if overridden."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def client_tls_from_files(
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    server_name: str | None,
    names: tuple[str, str, str],
) -> ClientTls:
    """Reads a client's TLS files; TlsConfigError naming the setting (names: ca, cert, key)."""
    ca_name, cert_name, key_name = names
    check_both_or_neither(cert_file, key_file, cert_name, key_name)
    ca = read_pem(ca_file, ca_name) if ca_file is not None else None
    if ca is not None:
        check_certificates(ca, ca_name)
    cert = key = None
    if cert_file is not None and key_file is not None:
        cert, key = read_pem(cert_file, cert_name), read_pem(key_file, key_name)
        check_pair(cert, key, cert_name, key_name)
    return ClientTls(ca, cert, key, server_name)
