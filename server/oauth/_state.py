"""The authorization-code flow's ``state``: single use, bound to one installation, short-lived.

:meth:`OAuthTokens.begin_authorization` makes an unguessable state and keeps a
:class:`PendingAuthorization` under the state's SHA-256 digest (:func:`state_key`), so a store
that leaks does not leak usable states. :meth:`StateStore.consume` marks it used atomically and
says whether this was its first use; a used state is remembered until it expires, so a replay is
told apart from a state that was never issued.

The gateway's store may implement :class:`StateStore` (for replicas behind one callback URL);
:class:`MemoryStateStore` serves a single process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["ConsumedState", "MemoryStateStore", "PendingAuthorization", "StateStore", "state_key"]


def state_key(state: str) -> str:
    """What a state is stored under: its SHA-256 digest, hex."""
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingAuthorization:
    """An authorization begun and not yet completed. ``code_verifier`` is the PKCE secret (store
    it encrypted); ``redirect_uri`` must be sent again with the code; ``expires_at`` in epoch s."""

    installation_id: str
    redirect_uri: str
    code_verifier: str = field(repr=False)
    expires_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumedState:
    """The result of :meth:`StateStore.consume`: the record, and whether this was its first use."""

    pending: PendingAuthorization
    first_use: bool


class StateStore(Protocol):
    async def save(self, key: str, pending: PendingAuthorization, *, now: float) -> None:
        """Keep ``pending`` under ``key`` (a :func:`state_key`) until it expires; records
        past their ``expires_at`` at ``now`` may be dropped."""
        ...

    async def consume(self, key: str, *, now: float) -> ConsumedState | None:
        """Atomically mark the state used and return it with ``first_use`` (False when it had
        been consumed before); None when no such state is known. Records may be forgotten once
        ``now`` is past their ``expires_at``."""
        ...


class MemoryStateStore:
    """A :class:`StateStore` in a dict; records are dropped an hour after they expire."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[PendingAuthorization, bool]] = {}

    def __len__(self) -> int:
        return len(self._records)

    async def save(self, key: str, pending: PendingAuthorization, *, now: float) -> None:
        self._forget_expired(now)
        self._records[key] = (pending, False)

    async def consume(self, key: str, *, now: float) -> ConsumedState | None:
        self._forget_expired(now)
        record = self._records.get(key)
        if record is None:
            return None
        pending, used = record
        self._records[key] = (pending, True)
        return ConsumedState(pending=pending, first_use=not used)

    def _forget_expired(self, now: float) -> None:
        # Keep a record a little past its expiry, so that a late callback hears "expired"
        # rather than "never issued".
        stale = [k for k, (p, _) in self._records.items() if p.expires_at + 3600 < now]
        for key in stale:
            del self._records[key]
