"""The provider exchange log's writer: exchanges (already masked, ``core/_exchanges.py``) are
kept in memory for a moment and written to the store in batches, so that logging a send costs
the send path an append, not a store write (docs/operations.md, "Provider exchanges").

A batch is written every ``flush_interval_s`` seconds, at once when ``max_pending`` are waiting,
before a message's exchanges are read (:meth:`ExchangeLog.of_message`) and at :meth:`aclose`. A
batch the store refuses is dropped and logged (its size only): the log is for reading, and a send
never fails for it. A log made with ``enabled=False`` keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..store import ProviderExchange, Store

__all__ = ["ExchangeLog"]

logger = logging.getLogger(__name__)


class ExchangeLog:
    """Batches :meth:`record`\\ ed exchanges into the store; ``start`` / ``aclose``."""

    def __init__(
        self,
        store: Store,
        *,
        enabled: bool = True,
        flush_interval_s: float = 0.5,
        max_pending: int = 512,
    ) -> None:
        self._store = store
        self.enabled = enabled
        self._interval_s = flush_interval_s
        self._max_pending = max_pending
        self._pending: list[ProviderExchange] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, exchange: ProviderExchange) -> None:
        """Keep ``exchange`` (written with the next batch)."""
        if not self.enabled:
            return
        self._pending.append(exchange)
        if len(self._pending) >= self._max_pending:
            self._wake.set()

    async def flush(self) -> None:
        """Write what is waiting now."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                # Shielded: a close that cancels the loop mid-write does not lose the batch.
                await asyncio.shield(self._store.record_exchanges(batch))
            except Exception:
                logger.exception("provider exchanges not kept", extra={"count": len(batch)})

    async def of_message(self, message_id: str) -> tuple[ProviderExchange, ...]:
        """The exchanges made for ``message_id`` (this process's waiting ones written first)."""
        if self._pending:
            await self.flush()
        return await self._store.list_exchanges(message_id)

    async def start(self) -> None:
        """Write batches in the background."""
        if self._task is not None:
            raise RuntimeError("ExchangeLog already started")

        async def loop() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)
                self._wake.clear()
                await self.flush()

        self._task = asyncio.create_task(loop(), name="msgbridge-exchange-log")

    async def aclose(self) -> None:
        """Stop, writing what is waiting (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
