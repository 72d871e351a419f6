"""TLS and mutual TLS credentials of the gRPC API, from PEM files.

The files are checked when the service starts, so a wrong path, a file that holds no certificate
or a key that does not belong to the certificate is a clear :class:`SettingsError` rather than a
handshake that fails later for every caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ...config import SettingsError

__all__ = ["load_server_credentials"]

_PUBLIC = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_server_credentials(*, cert: Path, key: Path, client_ca: Path | None = None) -> Any:
    """``grpc.ServerCredentials`` serving ``cert`` (a PEM chain, leaf first) with ``key``.

    With ``client_ca`` (PEM CA certificates), every caller must present a certificate that chains
    to one of them (mutual TLS).
    """
    cert_pem = _read("tls_cert", cert)
    key_pem = _read("tls_key", key)
    leaf = _certificates("tls_cert", cert, cert_pem)[0]
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise SettingsError(f"tls_key: {key} holds no unencrypted PEM private key") from None
    if private_key.public_key().public_bytes(*_PUBLIC) != leaf.public_key().public_bytes(*_PUBLIC):
        raise SettingsError(f"tls_key: {key} is not the key of the certificate in {cert}")
    ca_pem: bytes | None = None
    if client_ca is not None:
        ca_pem = _read("tls_client_ca", client_ca)
        _certificates("tls_client_ca", client_ca, ca_pem)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=ca_pem is not None
    )


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{setting}: {path}: {exc.strerror}") from None


def _certificates(setting: str, path: Path, pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certificates = []
    if not certificates:
        raise SettingsError(f"{setting}: {path} holds no PEM certificate")
    return certificates
