"""API access as a whole, built from the settings: the token policy, the TLS credentials and the
listening rule, with the interceptors and the port binding that apply them to a grpc.aio server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...config import SettingsError
from ._exposure import check_exposure, is_loopback_listen
from ._interceptor import AccessInterceptor
from ._policy import AccessPolicy
from ._tls import load_server_credentials
from ._token_file import load_access_policy

__all__ = ["AccessSettings", "ApiAccess"]

logger = logging.getLogger(__name__)


class AccessSettings(Protocol):
    """The settings API access reads (``server.config.Settings`` has them all)."""

    @property
    def grpc_listen(self) -> str: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def api_tokens_file(self) -> Path | None: ...
    @property
    def tls_cert(self) -> Path | None: ...
    @property
    def tls_key(self) -> Path | None: ...
    @property
    def tls_client_ca(self) -> Path | None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiAccess:
    """Who may call the API and over what: the default is open, plaintext (loopback only)."""

    policy: AccessPolicy = field(default_factory=AccessPolicy)
    credentials: Any = field(default=None, repr=False)  # grpc.ServerCredentials, or None
    mutual_tls: bool = False

    @classmethod
    def from_settings(
        cls, settings: AccessSettings, *, environ: Mapping[str, str] | None = None
    ) -> ApiAccess:
        """Read the token file (and ``MSGBRIDGE_API_TOKENS`` from ``environ``, default the
        process environment) and the TLS files, and apply the listening rule.

        Raises :class:`SettingsError` for anything unusable, before anything listens.
        """
        cert, key, client_ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
        if (cert is None) != (key is None):
            raise SettingsError("tls_cert and tls_key: give both (TLS) or neither")
        if client_ca is not None and cert is None:
            raise SettingsError("tls_client_ca: mutual TLS needs tls_cert and tls_key too")
        policy = load_access_policy(settings.api_tokens_file, environ=environ)
        credentials = None
        if cert is not None and key is not None:
            credentials = load_server_credentials(cert=cert, key=key, client_ca=client_ca)
        check_exposure(
            listen=settings.grpc_listen,
            tls=credentials is not None,
            tokens=policy.enforced,
            insecure=settings.insecure,
        )
        access = cls(policy=policy, credentials=credentials, mutual_tls=client_ca is not None)
        access._log_posture(settings.grpc_listen)
        return access

    def interceptors(self) -> list[Any]:
        """The interceptors to pass to ``grpc.aio.server`` (none when nothing is enforced)."""
        return [AccessInterceptor(self.policy)] if self.policy.enforced else []

    def bind(self, server: Any, listen: str) -> int:
        """Add the listening port to ``server`` (TLS when configured); the port bound.

        ``OSError`` when the address cannot be bound.
        """
        if self.credentials is not None:
            port: int = server.add_secure_port(listen, self.credentials)
        else:
            port = server.add_insecure_port(listen)
        if port == 0:
            raise OSError(f"cannot listen on {listen}")
        return port

    def _log_posture(self, listen: str) -> None:
        extra = {
            "tls": "mutual" if self.mutual_tls else "on" if self.credentials is not None else "off",
            "tokens": len(self.policy.tokens),
        }
        logger.info("gRPC API access", extra=extra)
        if is_loopback_listen(listen):
            return
        if self.credentials is None and not self.policy.enforced:
            logger.warning(
                "the gRPC API listens beyond loopback without TLS or tokens (--insecure): anyone "
                "who reaches it may call it",
                extra={"listen": listen},
            )
        elif not self.policy.enforced and not self.mutual_tls:
            logger.warning(
                "the gRPC API listens beyond loopback with TLS but without tokens or client "
                "certificates: anyone who reaches it may call it",
                extra={"listen": listen},
            )
