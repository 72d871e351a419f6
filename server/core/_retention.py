"""Retention: a background task that purges what is older than each kind's retention setting,
so that nothing the gateway keeps grows without bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..store import Store

__all__ = ["Retention", "RetentionKeeper"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Retention:
    """How long each kind is kept, in days (0 keeps it forever)."""

    events_days: float
    requests_days: float
    unmatched_days: float
    messages_days: float
    dedupe_days: float
    #: Stored files (docs/media.md); 0 keeps them forever.
    media_days: float = 0.0
    #: The provider exchange log (docs/operations.md, "Provider exchanges"); 0 keeps it forever.
    exchanges_days: float = 0.0


class RetentionKeeper:
    """Purges every ``interval_s`` seconds once started; :meth:`purge_once` purges now."""

    def __init__(
        self,
        store: Store,
        retention: Retention,
        *,
        interval_s: float,
        purge_media: Callable[[datetime], Awaitable[int]] | None = None,
    ) -> None:
        self._store = store
        self._purge_media = purge_media
        self._retention = retention
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def purge_once(self, now: datetime | None = None) -> dict[str, int]:
        now = now or datetime.now(UTC)

        def before(days: float) -> datetime | None:
            return now - timedelta(days=days) if days > 0 else None

        r = self._retention
        counts = await self._store.purge(
            events_before=before(r.events_days),
            requests_before=before(r.requests_days),
            unmatched_before=before(r.unmatched_days),
            messages_before=before(r.messages_days),
            dedupe_before=before(r.dedupe_days),
        )
        media_before = before(r.media_days)
        if self._purge_media is not None and media_before is not None:
            counts["media"] = await self._purge_media(media_before)
        exchanges_before = before(r.exchanges_days)
        if exchanges_before is not None:
            counts["exchanges"] = await self._store.purge_exchanges(exchanges_before)
        if any(counts.values()):
            logger.info("retention purge", extra=counts)
        return counts

    async def start(self) -> None:
        """Start purging in the background (the first purge at once)."""
        if self._task is not None:
            raise RuntimeError("RetentionKeeper already started")

        async def loop() -> None:
            while True:
                try:
                    await self.purge_once()
                except Exception:
                    logger.exception("retention purge failed")
                await asyncio.sleep(self._interval_s)

        self._task = asyncio.create_task(loop(), name="msgbridge-retention")

    async def aclose(self) -> None:
        """Stop purging (idempotent); a purge under way is cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
