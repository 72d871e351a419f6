"""The gRPC servicer of ``msgbridge.v1.Ingest``: the internal service a separate sidecar
(``msgbridge sidecar --core``) forwards each webhook to — over one long-lived
``IngestWebhooks`` call (:mod:`._delivery_stream`), or one ``IngestWebhook`` call each.

Its failures cross gRPC through the same boundary as the Gateway's (:mod:`server.api._rpc`): a
store failure is UNAVAILABLE, which the sidecar answers the provider 503 with ``Retry-After`` so
that the provider retries; an unexpected failure is INTERNAL, answered 500.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc

from ..core import Ingestor
from ..sidecar import delivery_of, verdict_message
from ._delivery_stream import DeliveryStreams
from ._media import MediaRpcs
from ._rpc import rpc, rpc_stream

__all__ = ["IngestServicer"]


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    def __init__(
        self,
        ingestor: Ingestor,
        media: MediaRpcs | None = None,
        streams: DeliveryStreams | None = None,
    ) -> None:
        self._ingestor = ingestor
        self._media = media if media is not None else MediaRpcs(None, send_max_age_s=0.0)
        self._streams = streams if streams is not None else DeliveryStreams()

    async def _ingest(self, message: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        """The core's verdict on a delivery from a sidecar in its own process, converted from
        and to the messages at this boundary (server/sidecar/_delivery.py)."""
        return verdict_message(await self._ingestor.ingest(delivery_of(message)))

    @rpc
    async def IngestWebhook(
        self, request: ingest_pb2.WebhookDelivery, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.WebhookVerdict:
        return await self._ingest(request)

    @rpc_stream
    async def IngestWebhooks(
        self,
        request_iterator: AsyncIterator[ingest_pb2.DeliveryBatch],
        context: grpc.aio.ServicerContext,
    ) -> AsyncGenerator[ingest_pb2.VerdictBatch, None]:
        with self._streams.open(self._ingest) as stream:
            async for batch in stream.verdicts(request_iterator):
                yield batch

    @rpc_stream
    async def ReadMedia(
        self, request: ingest_pb2.MediaRead, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[ingest_pb2.MediaPart, None]:
        async for part in self._media.read(request):
            yield part
