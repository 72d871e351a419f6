"""The ways the sidecar reaches the core: the :class:`IngestHandler` interface and its gRPC client.

Under ``msgbridge serve`` the core's own ingest object is the handler (no network in between);
alone, as ``msgbridge sidecar``, the sidecar forwards each delivery with
:class:`GrpcIngestForwarder` to ``msgbridge.v1.Ingest/IngestWebhook``. Either raises
:class:`CoreUnavailable` when the core cannot take the delivery now; the sidecar then answers 503
with ``Retry-After`` so that the provider retries later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc

from ..tracing import trace_metadata

__all__ = ["CoreUnavailable", "GrpcIngestForwarder", "IngestHandler"]

logger = logging.getLogger(__name__)


class IngestHandler(Protocol):
    """What the sidecar calls for every webhook: the core's decision on one raw delivery."""

    async def ingest(self, delivery: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        """Match, route and store the delivery; the verdict says what to answer the provider."""
        ...


class CoreUnavailable(Exception):
    """The core cannot take the delivery now (unreachable, overloaded, too slow): retry later.

    ``retry_after_s`` is what the sidecar puts in ``Retry-After``.
    """

    def __init__(self, message: str = "core unavailable", *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# Codes after which the same delivery may well succeed later. A deadline exceeded is ambiguous
# (the core may have stored the request just before it), which is safe: the provider's retry is
# recognised as a duplicate by its message id and makes no second event.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


class GrpcIngestForwarder:
    """An :class:`IngestHandler` that calls the core's ``Ingest`` service over gRPC.

    ``target`` is ``HOST:PORT`` (or any gRPC target). ``credentials`` makes the channel TLS
    (``grpc.ssl_channel_credentials(...)``), else it is plaintext. ``token`` is sent on every call
    as ``authorization: Bearer <token>``. ``timeout_s`` is the deadline of one call. The channel
    connects on the first call and reconnects by itself; close it with :meth:`aclose`.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        retry_after_s: int = 5,
        channel_options: Sequence[tuple[str, str | int]] = (),
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        if token is not None and (not token or "\n" in token):
            raise ValueError("token must be a non-empty single line")
        options = [
            # The core may be restarted while the sidecar stays up: notice a dead peer quickly.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            *channel_options,
        ]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = ingest_pb2_grpc.IngestStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self._timeout_s = timeout_s
        self._retry_after_s = retry_after_s

    def __repr__(self) -> str:  # never shows the token
        return f"<GrpcIngestForwarder timeout_s={self._timeout_s}>"

    async def ingest(self, delivery: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        """Forward one delivery; :class:`CoreUnavailable` when the core cannot take it now.

        Other gRPC failures (say UNAUTHENTICATED for a wrong token) propagate as
        ``grpc.aio.AioRpcError``: they are the operator's to fix, not the provider's to retry.
        """
        try:
            verdict: ingest_pb2.WebhookVerdict = await self._stub.IngestWebhook(
                delivery, timeout=self._timeout_s, metadata=self._metadata + trace_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE:
                raise CoreUnavailable(
                    f"core unavailable: {exc.code().name}", retry_after_s=self._retry_after_s
                ) from exc
            raise
        return verdict

    def read_media(
        self, request: ingest_pb2.MediaRead, *, deadline: bool
    ) -> AsyncGenerator[ingest_pb2.MediaPart, None]:
        """The core's ``ReadMedia`` stream (the media route's, docs/media.md); with
        ``deadline`` the call has this forwarder's timeout, else none of its own (a large file
        takes its time). A failure the core may not have later raises :class:`CoreUnavailable`."""
        call = self._stub.ReadMedia(
            request, timeout=self._timeout_s if deadline else None, metadata=self._metadata
        )
        return self._unavailable_as_such(call)

    async def _unavailable_as_such(
        self, call: AsyncIterator[ingest_pb2.MediaPart]
    ) -> AsyncGenerator[ingest_pb2.MediaPart, None]:
        try:
            async for part in call:
                yield part
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE:
                raise CoreUnavailable(
                    f"core unavailable: {exc.code().name}", retry_after_s=self._retry_after_s
                ) from exc
            raise

    async def ready(self) -> bool:
        """Whether the core answers its health check as SERVING (used by ``/readyz``).

        A core without the health service counts as ready once it answers at all.
        """
        request = health_pb2.HealthCheckRequest(service="")
        try:
            reply = await self._health.Check(
                request, timeout=min(self._timeout_s, 2.0), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            return bool(exc.code() == grpc.StatusCode.UNIMPLEMENTED)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def aclose(self) -> None:
        await self._channel.close()
