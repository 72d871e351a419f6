"""Where an installation's OAuth2 tokens live: the :class:`TokenVault` seam and its in-memory form.

The gateway's store implements :class:`TokenVault` (encrypting with
:class:`server.security.secrets.SecretBox`); :class:`MemoryTokenVault` is for tests and
single-process tools. A :class:`TokenSet` never shows its tokens in ``repr`` (so not in a log or a
traceback).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

__all__ = ["AuthorizationState", "MemoryTokenVault", "TokenSet", "TokenVault"]

#: What :meth:`TokenVault.mark` records about an installation's authorization:
#: ``"authorized"`` (a token was obtained), ``"expired"`` (the token expired and no refresh token
#: was issued), ``"error"`` (the provider refused a refresh, a code or the client credentials).
AuthorizationState: TypeAlias = Literal["authorized", "expired", "error"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenSet:
    """An installation's tokens. ``expires_at`` is in epoch seconds; None when the provider did
    not say (the token is then used until the provider answers 401)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: int | None = None
    token_type: str = "Bearer"  # noqa: S105 (a token type, not a secret)
    scope: str | None = None

    def __repr__(self) -> str:
        refresh = "set" if self.refresh_token else "none"
        return (
            f"TokenSet(access_token=<hidden>, refresh_token=<{refresh}>, "
            f"expires_at={self.expires_at!r}, token_type={self.token_type!r}, "
            f"scope={self.scope!r})"
        )

    __str__ = __repr__

    def is_fresh(self, now: float, leeway_s: float) -> bool:
        """True while the access token is still good ``leeway_s`` seconds from ``now``."""
        return self.expires_at is None or now + leeway_s < self.expires_at


class TokenVault(Protocol):
    """Keeps one :class:`TokenSet` per installation, and the installation's authorization state."""

    async def load(self, installation_id: str) -> TokenSet | None:
        """The installation's tokens, or None when it has none."""
        ...

    async def save(self, installation_id: str, tokens: TokenSet) -> None:
        """Replace the installation's tokens (a rotated refresh token must be kept)."""
        ...

    async def mark(self, installation_id: str, state: str, error: str | None) -> None:
        """Record the authorization state (:data:`AuthorizationState`) and, for ``"error"`` and
        ``"expired"``, the reason in plain words (it never holds a secret)."""
        ...

    def renewal(self, installation_id: str) -> AbstractAsyncContextManager[None]:
        """Held while the installation's tokens are renewed: excludes renewals of the same
        installation by other processes sharing the vault (replicas), so that a token is
        refreshed once across them. In one process :class:`OAuthTokens` already renews once."""
        ...


class MemoryTokenVault:
    """A :class:`TokenVault` in a dict: for tests and tools; nothing survives the process."""

    def __init__(self) -> None:
        self.tokens: dict[str, TokenSet] = {}
        self.states: dict[str, tuple[str, str | None]] = {}
        self.loads = 0
        self.saves = 0

    async def load(self, installation_id: str) -> TokenSet | None:
        self.loads += 1
        return self.tokens.get(installation_id)

    async def save(self, installation_id: str, tokens: TokenSet) -> None:
        self.tokens[installation_id] = tokens
        self.saves += 1

    async def mark(self, installation_id: str, state: str, error: str | None) -> None:
        self.states[installation_id] = (state, error)

    def renewal(self, installation_id: str) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()
