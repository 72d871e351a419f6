"""How a client reaches the gateway: TLS material, the bearer token and the default deadline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

__all__ = ["ClientOptions", "TLSConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TLSConfig:
    """TLS for the channel; with ``client_certificate`` and ``client_private_key``, mutual TLS.

    Every field is PEM bytes. Without ``root_certificates`` the system's roots are trusted.
    ``server_name`` overrides the name the server's certificate is checked against (for a target
    given as an IP address, say).
    """

    root_certificates: bytes | None = None
    client_certificate: bytes | None = None
    client_private_key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_certificate is None) != (self.client_private_key is None):
            raise ValueError("mutual TLS needs both client_certificate and client_private_key")

    @classmethod
    def from_files(
        cls,
        *,
        root_certificates: str | Path | None = None,
        client_certificate: str | Path | None = None,
        client_private_key: str | Path | None = None,
        server_name: str | None = None,
    ) -> TLSConfig:
        """Reads the PEM files named (``OSError`` when one cannot be read)."""
        return cls(
            root_certificates=_read(root_certificates),
            client_certificate=_read(client_certificate),
            client_private_key=_read(client_private_key),
            server_name=server_name,
        )

    def channel_credentials(self) -> Any:
        """The ``grpc.ChannelCredentials`` for a secure channel."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_private_key,
            certificate_chain=self.client_certificate,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientOptions:
    """Options of :meth:`AsyncClient.connect` and :meth:`Client.connect`.

    ``tls`` None is a plaintext channel. ``token`` is sent on every call as
    ``authorization: Bearer <token>`` (it never appears in a repr). ``timeout`` is the deadline in
    seconds of each unary call (None: none); streams have none. ``channel_options`` are passed to
    grpc as they are, e.g. ``(("grpc.keepalive_time_ms", 30000),)``.
    """

    tls: TLSConfig | None = None
    token: str | None = field(default=None, repr=False)
    timeout: float | None = 30.0
    channel_options: tuple[tuple[str, str | int], ...] = ()

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.token is not None and (not self.token or "\n" in self.token):
            raise ValueError("token must be a non-empty single line")

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata sent with every call."""
        if self.token is None:
            return ()
        return (("authorization", f"Bearer {self.token}"),)

    def channel_arguments(self) -> list[tuple[str, str | int]]:
        arguments = list(self.channel_options)
        if self.tls is not None and self.tls.server_name:
            arguments.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return arguments


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()
