"""The core's side of ``Ingest/IngestWebhooks``: many deliveries over one long-lived call from a
separate sidecar (docs/operations.md, "Edge sidecar").

Each delivery of a batch is ingested in its own task, as a unary ``IngestWebhook`` call's would
be, so one slow webhook holds no other back; its verdict, or the status the unary call would
have failed with (:func:`server.api._rpc.status_of`, the one error boundary), is answered as soon
as it is done, together with every other that is done by then. A delivery is answered only once
the core has stored it: the sidecar answers the provider 2xx only after that.

The call holds at most ``max_pending`` deliveries, and ``max_pending_bytes`` of their bodies,
being ingested at once; above either it reads no further batch until some are done, so that
grpc's flow control makes the sidecar wait (memory stays bounded however fast it writes).

A sidecar never ends its call; the core does when it shuts down (:meth:`DeliveryStreams.close`):
each open call reads no further, answers what it took, and ends, so that draining does not wait
out the grace period for it. The sidecar sends what it wrote after that to another core.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import grpc

from msgbridge.v1 import ingest_pb2

from ..errors import Unavailable
from ..tracing import delivery_span, note_grpc_status
from ._rpc import status_of

__all__ = ["DeliveryStream", "DeliveryStreams"]

_METHOD = "IngestWebhooks"
# A delivery's span has the name of the unary call's (docs/operations.md, "Traces"): a trace shows
# the same whichever way the sidecar forwarded it.
_SPAN = "IngestWebhook"
_DETAILS_KEY = "grpc-status-details-bin"


_Ingest = Callable[[ingest_pb2.WebhookDelivery], Awaitable[ingest_pb2.WebhookVerdict]]


class DeliveryStreams:
    """The open ``IngestWebhooks`` calls of one server, to end them when it shuts down."""

    def __init__(self) -> None:
        self._open: set[DeliveryStream] = set()
        self._closed = False

    @contextlib.contextmanager
    def open(self, ingest: _Ingest) -> Iterator[DeliveryStream]:
        """A call's stream, known here while it is open; UNAVAILABLE once shutting down."""
        if self._closed:
            raise Unavailable("the core is shutting down", reason="SHUTTING_DOWN")
        stream = DeliveryStream(ingest)
        self._open.add(stream)
        try:
            yield stream
        finally:
            self._open.discard(stream)

    def close(self) -> None:
        """Every open call reads no further and ends once what it took is answered."""
        self._closed = True
        for stream in self._open:
            stream.close()


class DeliveryStream:
    """One ``IngestWebhooks`` call: :meth:`verdicts` reads the batches and yields the answers."""

    def __init__(
        self,
        ingest: _Ingest,
        *,
        max_pending: int = 256,
        max_pending_bytes: int = 8 << 20,
    ) -> None:
        self._ingest = ingest
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._pending_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._answered: list[ingest_pb2.NumberedVerdict] = []
        self._wake = asyncio.Event()  # an answer is ready, or the reading ended
        self._room = asyncio.Event()  # fewer than the most deliveries are being ingested
        self._room.set()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    def close(self) -> None:
        """Read no further batch: the call ends once the deliveries taken are answered."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()

    async def verdicts(
        self, batches: AsyncIterator[ingest_pb2.DeliveryBatch]
    ) -> AsyncIterator[ingest_pb2.VerdictBatch]:
        """The answers to the deliveries of ``batches``, in batches, until the sidecar has
        written its last and every delivery is answered. What reading raises is raised here
        (the call's error boundary answers it); the tasks still ingesting when the call ends
        are cancelled, as a unary call's handler is when its caller goes away."""
        if self._closing:
            return
        reader = self._reader = asyncio.create_task(self._read(batches))
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._answered:
                    answered, self._answered = self._answered, []
                    yield ingest_pb2.VerdictBatch(verdicts=answered)
                if reader.done() and not self._tasks and not self._answered:
                    if not reader.cancelled():  # by close(): an end, not a failure
                        reader.result()
                    return
        finally:
            reader.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(reader, *self._tasks, return_exceptions=True)

    async def _read(self, batches: AsyncIterator[ingest_pb2.DeliveryBatch]) -> None:
        try:
            async for batch in batches:
                for numbered in batch.deliveries:
                    await self._room.wait()
                    size = len(numbered.delivery.body)
                    self._pending_bytes += size
                    task = asyncio.create_task(self._answer(numbered, size))
                    self._tasks.add(task)
                    if (
                        len(self._tasks) >= self._max_pending
                        or self._pending_bytes >= self._max_pending_bytes
                    ):
                        self._room.clear()
        finally:
            self._wake.set()

    async def _answer(self, numbered: ingest_pb2.NumberedDelivery, size: int) -> None:
        try:
            with delivery_span(_SPAN, _METHOD, numbered.trace) as span:
                try:
                    verdict = await self._ingest(numbered.delivery)
                except Exception as exc:  # not CancelledError: the call ended
                    status = status_of(exc, _METHOD)
                    note_grpc_status(span, status.code)
                    failure = ingest_pb2.DeliveryFailure(
                        code=status.code.value[0],
                        message=status.details,
                        details=_details_of(status),
                    )
                    answer = ingest_pb2.NumberedVerdict(id=numbered.id, failure=failure)
                else:
                    note_grpc_status(span, grpc.StatusCode.OK)
                    answer = ingest_pb2.NumberedVerdict(id=numbered.id, verdict=verdict)
            self._answered.append(answer)
        finally:
            task = asyncio.current_task()
            self._tasks.discard(task)
            self._pending_bytes -= size
            if (
                len(self._tasks) < self._max_pending
                and self._pending_bytes < self._max_pending_bytes
            ):
                self._room.set()
            self._wake.set()


def _details_of(status: grpc.Status) -> bytes:
    for key, value in status.trailing_metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return value
    return b""
