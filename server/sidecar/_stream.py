"""The sidecar's long-lived ``Ingest/IngestWebhooks`` call to one core (docs/operations.md,
"Edge sidecar").

Deliveries are numbered and queued; one writer sends what is queued as one batch whenever the
call can take more (so that batches grow with the load and a lone delivery leaves at once), and
one reader hands each answer to the delivery waiting for it. A batch holds at most
``max_batch_bytes`` of deliveries, or one delivery that is larger alone.

The call is opened on the first delivery and again on the first after it ended. When it ends —
the core went away, is shutting down, or refused the call — every delivery still waiting is told
how (:class:`StreamEnded`), whether it was written or not: the forwarder passes it to the next
core as it does a unary call that failed UNAVAILABLE, and a delivery the core may have stored
before it went away is recognised when it arrives again, by its provider message id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence

import grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc

__all__ = ["DeliveryCall", "StreamEnded"]

logger = logging.getLogger(__name__)


class StreamEnded(Exception):
    """The call ended before the delivery was answered; ``code`` says how (UNAVAILABLE when the
    core closed it without a status)."""

    def __init__(
        self, code: grpc.StatusCode, details: str, error: grpc.aio.AioRpcError | None = None
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.error = error  # the call's own error, with its rich status, when it had one


class DeliveryCall:
    """Deliveries to one core over one ``IngestWebhooks`` call at a time; close with
    :meth:`aclose`."""

    def __init__(
        self,
        stub: ingest_pb2_grpc.IngestStub,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        max_batch_bytes: int = 512 << 10,
    ) -> None:
        self._stub = stub
        self._metadata = tuple(metadata)
        self._max_batch_bytes = max_batch_bytes
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[ingest_pb2.NumberedVerdict]] = {}
        self._queued: list[ingest_pb2.NumberedDelivery] = []
        self._queued_event = asyncio.Event()
        self._call: (
            grpc.aio.StreamStreamCall[ingest_pb2.DeliveryBatch, ingest_pb2.VerdictBatch] | None
        ) = None
        self._tasks: list[asyncio.Task[None]] = []

    async def deliver(
        self, delivery: ingest_pb2.WebhookDelivery, trace_context: Mapping[str, str]
    ) -> ingest_pb2.NumberedVerdict:
        """The core's answer to ``delivery`` (a verdict or a failure); :class:`StreamEnded` when
        the call ended first. Cancelling the wait (a deadline) leaves the core to finish it."""
        if self._call is None:
            self._open()
        number = next(self._ids)
        answer: asyncio.Future[ingest_pb2.NumberedVerdict]
        answer = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        self._queued.append(
            ingest_pb2.NumberedDelivery(id=number, delivery=delivery, trace=trace_context)
        )
        self._queued_event.set()
        try:
            return await answer
        finally:
            self._waiting.pop(number, None)

    def _open(self) -> None:
        call = self._stub.IngestWebhooks(metadata=self._metadata)
        self._call = call
        self._tasks = [
            asyncio.create_task(self._write(call)),
            asyncio.create_task(self._read(call)),
        ]

    async def _write(
        self, call: grpc.aio.StreamStreamCall[ingest_pb2.DeliveryBatch, ingest_pb2.VerdictBatch]
    ) -> None:
        while True:
            await self._queued_event.wait()
            self._queued_event.clear()
            while self._queued:
                batch = self._take_batch()
                try:
                    await call.write(batch)
                except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                    return  # the call ended: the reader tells the deliveries
                if call.done():
                    return

    def _take_batch(self) -> ingest_pb2.DeliveryBatch:
        size, count = 0, 0
        for numbered in self._queued:
            size += numbered.ByteSize()
            if count and size > self._max_batch_bytes:
                break
            count += 1
        taken, self._queued = self._queued[:count], self._queued[count:]
        return ingest_pb2.DeliveryBatch(deliveries=taken)

    async def _read(
        self, call: grpc.aio.StreamStreamCall[ingest_pb2.DeliveryBatch, ingest_pb2.VerdictBatch]
    ) -> None:
        ended = StreamEnded(grpc.StatusCode.CANCELLED, "the sidecar is closing")
        try:
            async for batch in call:
                for answer in batch.verdicts:
                    waiting = self._waiting.get(answer.id)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(answer)
            ended = StreamEnded(grpc.StatusCode.UNAVAILABLE, "the core ended the call")
        except grpc.aio.AioRpcError as exc:
            ended = StreamEnded(exc.code(), exc.details() or "", exc)
        finally:
            self._ended(call, ended)

    def _ended(
        self,
        call: grpc.aio.StreamStreamCall[ingest_pb2.DeliveryBatch, ingest_pb2.VerdictBatch],
        ended: StreamEnded,
    ) -> None:
        if self._call is not call:
            return
        self._call = None
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._queued = []
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(ended)
        if ended.code != grpc.StatusCode.CANCELLED:
            logger.info("delivery stream ended", extra={"code": ended.code.name})

    async def aclose(self) -> None:
        call = self._call
        if call is not None:
            call.cancel()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
