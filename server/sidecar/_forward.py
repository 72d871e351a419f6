"""The ways the sidecar reaches the core: the :class:`IngestHandler` interface and its gRPC client.

Under ``msgbridge serve`` the core's own ingest object is the handler (no network in between);
alone, as ``msgbridge sidecar``, the sidecar forwards each delivery with
:class:`GrpcIngestForwarder` — of one core, or of the first of several that answers (replicas of
one database: any takes any webhook) — over one long-lived ``msgbridge.v1.Ingest/IngestWebhooks``
call per core, in batches (:mod:`._stream`), or with one ``IngestWebhook`` call per delivery to a
core that lacks it (an older one answers UNIMPLEMENTED). Either raises
:class:`CoreUnavailable` when no core can take the delivery now; the sidecar then answers 503
with ``Retry-After`` so that the provider retries later.

Failover: a core whose call fails UNAVAILABLE (not reachable, or shutting down) is passed over
for ``down_s`` seconds, and the delivery goes to the next core at once, in the order given,
starting from the one that answered last. A delivery the failed core may have stored before it
went away is recognised when it arrives again (by its provider message id), as when the provider
retries it. Other failures are not failed over: a deadline already spent, or a core that is busy
(RESOURCE_EXHAUSTED, ABORTED), is the provider's to retry later (503), and a refusal
(UNAUTHENTICATED for a wrong token, say) the operator's to fix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc

from ..tracing import trace_carrier, trace_metadata
from ._delivery import Delivery, Verdict, delivery_message, verdict_of
from ._stream import DeliveryCall, StreamEnded

__all__ = ["CoreUnavailable", "GrpcIngestForwarder", "IngestHandler"]

logger = logging.getLogger(__name__)


class IngestHandler(Protocol):
    """What the sidecar calls for every webhook: the core's decision on one raw delivery."""

    async def ingest(self, delivery: Delivery) -> Verdict:
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


# How the core refuses a call for the operator to fix (a wrong token, a request it cannot read),
# not a failure to pass to another core.
_REFUSALS = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)


@dataclass(eq=False)
class _Core:
    target: str
    channel: grpc.aio.Channel
    ingest: ingest_pb2_grpc.IngestStub
    health: health_pb2_grpc.HealthStub
    # The long-lived call; None once the core answered it UNIMPLEMENTED (a core older than
    # IngestWebhooks): then one IngestWebhook call per delivery.
    deliveries: DeliveryCall | None
    down_until: float = 0.0


class GrpcIngestForwarder:
    """An :class:`IngestHandler` that calls the ``Ingest`` service of a core over gRPC, failing
    over between several (see the module's docstring).

    ``targets`` is one ``HOST:PORT`` (or any gRPC target) or several. ``credentials`` makes the
    channels TLS (``grpc.ssl_channel_credentials(...)``), else they are plaintext. ``token`` is
    sent on every call as ``authorization: Bearer <token>``. ``timeout_s`` is the deadline of one
    call. Each channel connects on its first call and reconnects by itself; close them with
    :meth:`aclose`.
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        retry_after_s: int = 5,
        down_s: float = 5.0,
        channel_options: Sequence[tuple[str, str | int]] = (),
        stream: bool = True,
    ) -> None:
        targets = [targets] if isinstance(targets, str) else list(targets)
        if not targets:
            raise ValueError("at least one core is needed")
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
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self._cores: list[_Core] = []
        for target in targets:
            if credentials is None:
                channel = grpc.aio.insecure_channel(target, options=options)
            else:
                channel = grpc.aio.secure_channel(target, credentials, options=options)
            stub = ingest_pb2_grpc.IngestStub(channel)
            self._cores.append(
                _Core(
                    target,
                    channel,
                    stub,
                    health_pb2_grpc.HealthStub(channel),
                    DeliveryCall(stub, metadata=self._metadata) if stream else None,
                )
            )
        self._preferred = 0
        self._timeout_s = timeout_s
        self._retry_after_s = retry_after_s
        self._down_s = down_s

    def __repr__(self) -> str:  # never shows the token
        return f"<GrpcIngestForwarder cores={len(self._cores)} timeout_s={self._timeout_s}>"

    def _in_turn(self) -> Iterator[_Core]:
        """The cores to try, from the one that answered last: those not passed over first, then
        those that are (a last resort: one may be back)."""
        count = len(self._cores)
        ordered = [self._cores[(self._preferred + i) % count] for i in range(count)]
        now = time.monotonic()
        yield from (core for core in ordered if core.down_until <= now)
        yield from (core for core in ordered if core.down_until > now)

    def _answered(self, core: _Core) -> None:
        core.down_until = 0.0
        self._preferred = self._cores.index(core)

    def _failed(self, core: _Core, code: grpc.StatusCode) -> None:
        if core.down_until <= time.monotonic():
            logger.warning(
                "core unavailable; passing it over",
                extra={"core": core.target, "code": code.name, "seconds": self._down_s},
            )
        core.down_until = time.monotonic() + self._down_s

    def _unavailable(self, exc: grpc.aio.AioRpcError) -> CoreUnavailable:
        return CoreUnavailable(
            f"core unavailable: {exc.code().name}", retry_after_s=self._retry_after_s
        )

    async def ingest(self, delivery: Delivery) -> Verdict:
        """Forward one delivery; :class:`CoreUnavailable` when no core can take it now.

        Other gRPC failures (say UNAUTHENTICATED for a wrong token) propagate as
        ``grpc.aio.AioRpcError``: they are the operator's to fix, not the provider's to retry.
        """
        failed: grpc.aio.AioRpcError | None = None
        message = delivery_message(delivery)
        for core in self._in_turn():
            try:
                verdict = await self._deliver(core, message)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self._failed(core, exc.code())
                    failed = exc
                    continue  # the next core, at once
                if exc.code() in _RETRYABLE:
                    raise self._unavailable(exc) from exc
                raise
            self._answered(core)
            return verdict_of(verdict)
        assert failed is not None
        raise self._unavailable(failed) from failed

    async def _deliver(
        self, core: _Core, delivery: ingest_pb2.WebhookDelivery
    ) -> ingest_pb2.WebhookVerdict:
        """The core's verdict on ``delivery``, over its long-lived call when it has one; how
        either way failed as the ``AioRpcError`` of a unary call."""
        deliveries = core.deliveries
        if deliveries is None:
            verdict: ingest_pb2.WebhookVerdict = await core.ingest.IngestWebhook(
                delivery, timeout=self._timeout_s, metadata=self._metadata + trace_metadata()
            )
            return verdict
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await deliveries.deliver(delivery, trace_carrier())
        except TimeoutError:
            raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "no answer in time") from None
        except StreamEnded as ended:
            if ended.code == grpc.StatusCode.UNIMPLEMENTED:
                logger.info("core without IngestWebhooks; one call per webhook to it")
                core.deliveries = None
                await deliveries.aclose()
                return await self._deliver(core, delivery)
            if ended.code in _REFUSALS and ended.error is not None:
                raise ended.error from None
            # However else the call ended (grpc reports a connection lost in the middle of a
            # write as INTERNAL), the core went away: the next core takes the delivery.
            raise _rpc_error(grpc.StatusCode.UNAVAILABLE, f"the call ended: {ended}") from ended
        if answer.HasField("failure"):
            failure = answer.failure
            code = _CODES.get(failure.code, grpc.StatusCode.UNKNOWN)
            raise _rpc_error(code, failure.message, failure.details)
        return answer.verdict

    def read_media(
        self, request: ingest_pb2.MediaRead, *, deadline: bool
    ) -> AsyncGenerator[ingest_pb2.MediaPart, None]:
        """The ``ReadMedia`` stream (the media route's, docs/media.md) of the core that answered
        last; with ``deadline`` the call has this forwarder's timeout, else none of its own (a
        large file takes its time). A failure the core may not have later raises
        :class:`CoreUnavailable` (and passes that core over when it is UNAVAILABLE)."""
        core = next(self._in_turn())
        call = core.ingest.ReadMedia(
            request, timeout=self._timeout_s if deadline else None, metadata=self._metadata
        )
        return self._unavailable_as_such(core, call)

    async def _unavailable_as_such(
        self, core: _Core, call: AsyncIterator[ingest_pb2.MediaPart]
    ) -> AsyncGenerator[ingest_pb2.MediaPart, None]:
        try:
            async for part in call:
                yield part
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self._failed(core, exc.code())
            if exc.code() in _RETRYABLE:
                raise self._unavailable(exc) from exc
            raise

    async def ready(self) -> bool:
        """Whether a core answers its health check as SERVING (used by ``/readyz``).

        A core without the health service counts as ready once it answers at all.
        """
        request = health_pb2.HealthCheckRequest(service="")
        for core in self._in_turn():
            try:
                reply = await core.health.Check(
                    request, timeout=min(self._timeout_s, 2.0), metadata=self._metadata
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return True
                continue
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return True
        return False

    async def aclose(self) -> None:
        for core in self._cores:
            if core.deliveries is not None:
                await core.deliveries.aclose()
            await core.channel.close()


# google.rpc.Code values (a DeliveryFailure's code) to grpc's status codes.
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _rpc_error(
    code: grpc.StatusCode, details: str, rich_status: bytes = b""
) -> grpc.aio.AioRpcError:
    """A failure over the long-lived call as a unary call's would have been (with its
    google.rpc.Status in the trailer that would have carried it)."""
    trailer = grpc.aio.Metadata(("grpc-status-details-bin", rich_status)) if rich_status else None
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), trailer or grpc.aio.Metadata(), details=details
    )
