"""One renewal at a time per installation, and the tokens last seen: what OAuth2's tokens
(:mod:`._tokens`) and (ext) a Token auth's (:mod:`._request_tokens`) share (docs/format.md,
"OAuth2" and "Tokens from a request").

The first caller that needs new tokens starts the renewal as a task and every concurrent caller
awaits that same task (its result or its error). The task is shielded from the callers'
cancellation, so tokens the provider has issued are always saved. The last tokens seen are kept in
memory, so a call with a fresh token reads nothing; a failed renewal forgets them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ._vault import TokenSet, TokenVault

__all__ = ["Renewals"]


class Renewals:
    """The renewals in progress and the tokens last seen, per installation."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[TokenSet]] = {}
        self._seen: dict[str, TokenSet] = {}

    async def fresh(
        self, installation_id: str, vault: TokenVault, now: float, leeway_s: float
    ) -> TokenSet | None:
        """The installation's tokens when they are good ``leeway_s`` from ``now``: those last
        seen, else those ``vault`` keeps; None when they must be renewed."""
        seen = self._seen.get(installation_id)
        if seen is not None and seen.is_fresh(now, leeway_s):
            return seen
        stored = await vault.load(installation_id)
        if stored is not None and stored.is_fresh(now, leeway_s):
            self._seen[installation_id] = stored
            return stored
        return None

    def join(
        self,
        installation_id: str,
        start: Callable[[], Coroutine[Any, Any, TokenSet]],
        *,
        name: str,
    ) -> Awaitable[TokenSet]:
        """The installation's renewal in progress, or a new one made by ``start()``."""
        task = self._tasks.get(installation_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(start(), name=name)
            self._tasks[installation_id] = task
            task.add_done_callback(lambda done: self._done(installation_id, done))
        return asyncio.shield(task)

    def _done(self, installation_id: str, task: asyncio.Task[TokenSet]) -> None:
        if self._tasks.get(installation_id) is task:
            del self._tasks[installation_id]
        if task.cancelled() or task.exception() is not None:  # retrieved: awaiters may be gone
            self._seen.pop(installation_id, None)
        else:
            self._seen[installation_id] = task.result()

    def running(self, installation_id: str) -> asyncio.Task[TokenSet] | None:
        """The installation's renewal in progress, if any."""
        return self._tasks.get(installation_id)

    def seen(self, installation_id: str) -> TokenSet | None:
        """The tokens last seen for the installation."""
        return self._seen.get(installation_id)

    def remember(self, installation_id: str, tokens: TokenSet) -> None:
        """Tokens obtained outside a renewal (an authorization's), now the ones in use."""
        self._seen[installation_id] = tokens
