"""``msgbridge sidecar --core A --core B``: the forwarder sends each webhook to the first core
that answers, passes over one that is not reachable, and answers 503 with ``Retry-After`` only
when none is (docs/operations.md, "The sidecar at the edge"). Real grpc.aio cores on 127.0.0.1,
each test against cores that take the long-lived ``IngestWebhooks`` call and against cores that
have only ``IngestWebhook`` (an older core)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc
from server.api._delivery_stream import DeliveryStream
from server.errors import GatewayError
from server.sidecar import CoreUnavailable, Delivery, GrpcIngestForwarder


class Core(ingest_pb2_grpc.IngestServicer):
    """A core's Ingest service that stores every delivery it is given, by name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bodies: list[bytes] = []
        self.abort_with: grpc.StatusCode | None = None
        self.server: grpc.aio.Server | None = None
        self.target = ""

    async def IngestWebhook(
        self, request: ingest_pb2.WebhookDelivery, context: Any
    ) -> ingest_pb2.WebhookVerdict:
        if self.abort_with is not None:
            await context.abort(self.abort_with, "refused")
        return await self.take(request)

    async def take(self, request: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        if self.abort_with is not None:  # as the core's error boundary answers a failure
            raise type("Refusal", (GatewayError,), {"grpc_code": self.abort_with})("refused")
        self.bodies.append(request.body)
        return ingest_pb2.WebhookVerdict(http_status=200, body=self.name.encode(), events=1)

    async def start(self, port: int = 0) -> None:
        self.server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(self, self.server)
        checks = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checks, self.server)
        bound = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()
        await checks.set("", health_pb2.HealthCheckResponse.SERVING)
        self.target = f"127.0.0.1:{bound}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None


class StreamingCore(Core):
    """A core that also takes the long-lived call, answered as the real core answers it."""

    async def IngestWebhooks(
        self, request_iterator: AsyncIterator[ingest_pb2.DeliveryBatch], context: Any
    ) -> AsyncIterator[ingest_pb2.VerdictBatch]:
        async for batch in DeliveryStream(self.take).verdicts(request_iterator):
            yield batch


StartCore = Callable[[str], Awaitable[Core]]


@pytest.fixture(params=[StreamingCore, Core], ids=["streaming", "unary only"])
async def start_core(request: pytest.FixtureRequest) -> AsyncIterator[StartCore]:
    cores: list[Core] = []

    async def start(name: str) -> Core:
        core: Core = request.param(name)
        await core.start()
        cores.append(core)
        return core

    yield start
    for core in cores:
        await core.stop()


def delivery(body: bytes) -> Delivery:
    return Delivery(method="POST", path="/webhooks/acme/t", body=body)


async def test_webhooks_go_to_the_first_core_while_it_answers(start_core: StartCore) -> None:
    a, b = await start_core("a"), await start_core("b")
    forwarder = GrpcIngestForwarder([a.target, b.target], timeout_s=5)
    try:
        verdicts = [await forwarder.ingest(delivery(b"%d" % n)) for n in range(3)]
    finally:
        await forwarder.aclose()
    assert [v.body for v in verdicts] == [b"a"] * 3
    assert (a.bodies, b.bodies) == ([b"0", b"1", b"2"], [])


async def test_a_core_that_goes_away_is_failed_over_and_passed_over(
    start_core: StartCore, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await start_core("a"), await start_core("b")
    forwarder = GrpcIngestForwarder([a.target, b.target], timeout_s=5, down_s=60)
    try:
        assert (await forwarder.ingest(delivery(b"before"))).body == b"a"
        await a.stop()
        # The delivery A cannot take goes to B at once: the provider is answered 200, not 503.
        assert (await forwarder.ingest(delivery(b"during"))).body == b"b"
        # A is passed over from then on, even once it is back (until down_s has passed) …
        await a.start(port=int(a.target.rsplit(":", 1)[1]))
        assert (await forwarder.ingest(delivery(b"after"))).body == b"b"
        # … and B stays the one that answers, while it does.
        assert (await forwarder.ingest(delivery(b"later"))).body == b"b"
        assert await forwarder.ready() is True
    finally:
        await forwarder.aclose()
    assert a.bodies == [b"before"]
    assert b.bodies == [b"during", b"after", b"later"]
    warnings = [r for r in caplog.records if r.getMessage() == "core unavailable; passing it over"]
    assert [getattr(r, "core", None) for r in warnings] == [a.target]


async def test_a_passed_over_core_is_tried_when_no_other_answers(start_core: StartCore) -> None:
    a, b = await start_core("a"), await start_core("b")
    forwarder = GrpcIngestForwarder([a.target, b.target], timeout_s=5, down_s=60)
    try:
        a.abort_with = grpc.StatusCode.UNAVAILABLE  # a core shutting down refuses so
        assert (await forwarder.ingest(delivery(b"1"))).body == b"b"
        a.abort_with = None
        await b.stop()
        # B fails; A, passed over but answering again, is the last resort and takes it.
        assert (await forwarder.ingest(delivery(b"2"))).body == b"a"
    finally:
        await forwarder.aclose()
    assert (a.bodies, b.bodies) == ([b"2"], [b"1"])


async def test_no_core_reachable_is_core_unavailable_with_its_retry_after(
    start_core: StartCore,
) -> None:
    a, b = await start_core("a"), await start_core("b")
    forwarder = GrpcIngestForwarder([a.target, b.target], timeout_s=5, retry_after_s=7)
    try:
        await a.stop()
        await b.stop()
        with pytest.raises(CoreUnavailable) as raised:
            await forwarder.ingest(delivery(b"lost?"))
        assert raised.value.retry_after_s == 7
        assert await forwarder.ready() is False
    finally:
        await forwarder.aclose()


@pytest.mark.parametrize("code", [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED])
async def test_a_busy_core_is_not_failed_over(start_core: StartCore, code: grpc.StatusCode) -> None:
    """A core that answers but cannot take the delivery now is the provider's to retry later
    (503): another core of the same database is as busy."""
    a, b = await start_core("a"), await start_core("b")
    a.abort_with = code
    forwarder = GrpcIngestForwarder([a.target, b.target], timeout_s=5)
    try:
        with pytest.raises(CoreUnavailable):
            await forwarder.ingest(delivery(b"busy"))
    finally:
        await forwarder.aclose()
    assert b.bodies == []


async def test_a_refusal_is_not_failed_over(start_core: StartCore) -> None:
    a, b = await start_core("a"), await start_core("b")
    a.abort_with = grpc.StatusCode.UNAUTHENTICATED
    forwarder = GrpcIngestForwarder([a.target, b.target], timeout_s=5)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await forwarder.ingest(delivery(b"wrong token"))
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        await forwarder.aclose()
    assert b.bodies == []


def test_a_forwarder_needs_a_core() -> None:
    with pytest.raises(ValueError, match="at least one core"):
        GrpcIngestForwarder([])


def test_the_sidecar_command_takes_several_cores() -> None:
    from client.cli import build_parser

    parsed = build_parser().parse_args(["sidecar", "--core", "a:50051", "--core", "b:50051"])
    assert parsed.core == ["a:50051", "b:50051"]
    single = build_parser().parse_args(["sidecar", "--core", "a:50051"])
    assert single.core == ["a:50051"]
