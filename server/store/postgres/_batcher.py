"""Running the ingests this process makes at the same time as one PostgreSQL transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._base import Conflict, IngestOutcome, StoreError
from .._inbound import Inbound

__all__ = ["IngestBatcher", "QueuedIngest"]


@dataclass(slots=True)
class QueuedIngest:
    request_params: tuple[Any, ...]
    inbound: Inbound
    future: asyncio.Future[IngestOutcome]


class IngestBatcher:
    """Runs the ingests this process makes at the same time as one transaction.

    Appends commit one after another (the cursor row: see :mod:`server.store.postgres`), each
    commit waits for its WAL flush, so one transaction per ingest caps a database at one ingest
    per flush. Queued ingests go instead in batches of up to ``max_batch``: one transaction, one
    statement per step for the whole batch, one flush. A batch that fails on a unique key (a
    request, held receipt or media hold id in use) is run again one ingest at a time, so that
    only the ingest at fault fails; other failures (a lost connection) fail the whole batch.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[QueuedIngest]], Awaitable[list[IngestOutcome]]],
        run_one: Callable[[QueuedIngest], Awaitable[IngestOutcome]],
        *,
        max_batch: int,
    ) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self._max_batch = max_batch
        self._queue: list[QueuedIngest] = []
        self._draining: asyncio.Task[None] | None = None

    def submit(
        self, request_params: tuple[Any, ...], inbound: Inbound
    ) -> asyncio.Future[IngestOutcome]:
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(QueuedIngest(request_params, inbound, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(), name="msgbridge-store-ingest")
        return future

    async def wait_idle(self) -> None:
        """Return once every ingest submitted so far is settled."""
        while self._draining is not None:
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._settle(batch)
        finally:
            self._draining = None

    async def _settle(self, batch: Sequence[QueuedIngest]) -> None:
        if len(batch) == 1:
            await self._settle_one(batch[0])
            return
        try:
            outcomes = await self._run_batch(batch)
        except Conflict:  # one of them is at fault: find which
            for item in batch:
                await self._settle_one(item)
            return
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():  # else the caller was cancelled; the ingest ran anyway
                item.future.set_result(outcome)

    async def _settle_one(self, item: QueuedIngest) -> None:
        try:
            outcome = await self._run_one(item)
        except BaseException as exc:
            _fail([item], exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not item.future.done():
                item.future.set_result(outcome)


def _fail(batch: Sequence[QueuedIngest], exc: BaseException) -> None:
    """Settle the callers of a batch that failed (its task cancelled: as a StoreError)."""
    if not isinstance(exc, Exception):
        exc = StoreError("the ingest was interrupted; it may or may not have been stored")
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
