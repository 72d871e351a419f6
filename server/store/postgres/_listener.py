"""Waking readers on every replica: a ``LISTEN`` on :data:`EVENTS_CHANNEL`, kept alive.

Every transaction that appends events sends ``NOTIFY msgbridge_events`` (payload: the new latest
cursor), which PostgreSQL delivers at the commit and drops on a rollback. Notifications are only
a wake-up; the events table is the truth, so a lost notification delays a reader that re-reads
the table now and then, never loses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import asyncpg

from .._base import StoreError
from ._pool import CONNECT_TIMEOUT_S, CONNECTION_ERRORS, Connection

__all__ = ["EVENTS_CHANNEL", "EventListener"]

logger = logging.getLogger(__name__)

EVENTS_CHANNEL: Final = "msgbridge_events"
"""The ``NOTIFY`` channel an ingest signals on when it committed events (payload: the cursor)."""


class EventListener:
    """A ``LISTEN`` on :data:`EVENTS_CHANNEL` on a connection of its own, kept alive.

    ``on_events()`` is called (on the event loop, with no argument) after every notification,
    and also each time the listening connection was re-established after a loss, because
    notifications sent meanwhile are gone: the callback is a wake-up, the events table is the
    truth. The connection is checked every ``check_s`` seconds, so a silently dead one is noticed
    and replaced. Get one from :meth:`PostgresStore.listen_events`; end it with :meth:`aclose`.
    """

    def __init__(
        self,
        dsn: str,
        on_events: Callable[[], object],
        *,
        check_s: float = 10.0,
        retry_s: float = 0.2,
        max_retry_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._on_events = on_events
        self._check_s = check_s
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Listen; returns once listening. Raises :class:`StoreError` if the first try fails."""
        loop = asyncio.get_running_loop()
        self._listening = loop.create_future()
        self._task = asyncio.create_task(self._run(), name="msgbridge-store-listen")
        try:
            await asyncio.shield(self._listening)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop listening and close the connection. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self._wake()

    def _wake(self) -> None:
        try:
            self._on_events()
        except Exception:
            logger.exception("event listener callback failed")

    async def _run(self) -> None:
        delay = self._retry_s
        first = True
        while True:
            conn: Connection | None = None
            try:
                lost = asyncio.Event()
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(EVENTS_CHANNEL, self._notified)
                if first:
                    first = False
                    self._settle(None)
                else:
                    logger.info("listening for events again")
                    self._wake()  # what was notified while the connection was down is missed
                delay = self._retry_s
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._check_s)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), self._check_s)
                logger.warning("the event listener's connection was closed")
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                if first:
                    self._settle(StoreError(f"cannot listen for events: {exc}"))
                    return
                logger.warning("event listener connection lost: %s", type(exc).__name__)
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_s)

    def _settle(self, error: StoreError | None) -> None:
        if self._listening is not None and not self._listening.done():
            if error is None:
                self._listening.set_result(None)
            else:
                self._listening.set_exception(error)
