"""``Ingest/IngestWebhooks``: the separate sidecar's long-lived call to its core
(docs/operations.md, "The sidecar at the edge"). The forwarder and the core's
:class:`DeliveryStream` over a real grpc.aio server on 127.0.0.1; the bound on what the core takes
at once on the stream alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc
from server.api import IngestServicer, add_lenient_servicer
from server.api._delivery_stream import DeliveryStream
from server.errors import InvalidRequest
from server.sidecar import CoreUnavailable, GrpcIngestForwarder


class Core(ingest_pb2_grpc.IngestServicer):
    """A core that answers each delivery with its body, after ``hold`` is set; counts its calls
    and the batches they carried."""

    def __init__(self) -> None:
        self.calls = 0
        self.batches = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self.refuse: Exception | None = None

    async def take(self, request: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        await self.hold.wait()
        if self.refuse is not None:
            raise self.refuse
        return ingest_pb2.WebhookVerdict(http_status=200, body=request.body)

    async def IngestWebhooks(
        self, request_iterator: AsyncIterator[ingest_pb2.DeliveryBatch], context: Any
    ) -> AsyncIterator[ingest_pb2.VerdictBatch]:
        self.calls += 1

        async def counted() -> AsyncIterator[ingest_pb2.DeliveryBatch]:
            async for batch in request_iterator:
                self.batches += 1
                yield batch

        async for answers in DeliveryStream(self.take).verdicts(counted()):
            yield answers


@pytest.fixture
async def core() -> AsyncIterator[tuple[Core, str]]:
    servicer = Core()
    server = grpc.aio.server()
    ingest_pb2_grpc.add_IngestServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


def delivery(body: bytes) -> ingest_pb2.WebhookDelivery:
    return ingest_pb2.WebhookDelivery(method="POST", path="/webhooks/acme/t", body=body)


async def test_webhooks_at_once_share_one_call_in_batches_and_each_gets_its_own_verdict(
    core: tuple[Core, str],
) -> None:
    servicer, target = core
    forwarder = GrpcIngestForwarder(target, timeout_s=5)
    try:
        await forwarder.ingest(delivery(b"first"))  # the call is open
        servicer.hold.clear()  # the core answers nothing while the others arrive
        bodies = [b"%d" % n for n in range(200)]
        waiting = [asyncio.create_task(forwarder.ingest(delivery(b))) for b in bodies]
        await asyncio.sleep(0.2)
        servicer.hold.set()
        verdicts = await asyncio.gather(*waiting)
    finally:
        await forwarder.aclose()
    assert [v.body for v in verdicts] == bodies
    assert servicer.calls == 1
    assert servicer.batches < len(bodies)  # many deliveries to a batch


async def test_a_failure_crosses_with_its_code_and_rich_status(core: tuple[Core, str]) -> None:
    servicer, target = core
    servicer.refuse = InvalidRequest("no such thing", reason="BAD_THING")
    forwarder = GrpcIngestForwarder(target, timeout_s=5)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await forwarder.ingest(delivery(b"x"))
    finally:
        await forwarder.aclose()
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "no such thing"
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert isinstance(raw, bytes)
    status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "BAD_THING"


async def test_a_core_that_does_not_answer_in_time_is_core_unavailable_and_the_call_goes_on(
    core: tuple[Core, str],
) -> None:
    servicer, target = core
    forwarder = GrpcIngestForwarder(target, timeout_s=0.3, retry_after_s=9)
    try:
        servicer.hold.clear()
        with pytest.raises(CoreUnavailable) as raised:
            await forwarder.ingest(delivery(b"slow"))
        assert raised.value.retry_after_s == 9
        servicer.hold.set()
        assert (await forwarder.ingest(delivery(b"next"))).body == b"next"
    finally:
        await forwarder.aclose()
    assert servicer.calls == 1


async def test_a_core_restarted_on_its_port_gets_a_new_call() -> None:
    servicer = Core()
    server = grpc.aio.server()
    ingest_pb2_grpc.add_IngestServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{port}", timeout_s=5)
    try:
        assert (await forwarder.ingest(delivery(b"before"))).body == b"before"
        await server.stop(None)
        with pytest.raises(CoreUnavailable):
            await forwarder.ingest(delivery(b"while down"))
        server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        # The channel reconnects by itself, after a pause: until then the provider gets 503.
        for _ in range(100):
            try:
                verdict = await forwarder.ingest(delivery(b"after"))
                break
            except CoreUnavailable:
                await asyncio.sleep(0.1)
        assert verdict.body == b"after"
    finally:
        await forwarder.aclose()
        await server.stop(None)
    assert servicer.calls == 2


class _Ingestor:
    async def ingest(self, delivery: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        return ingest_pb2.WebhookVerdict(http_status=200)


async def test_an_undecodable_batch_is_invalid_argument() -> None:
    server = grpc.aio.server()
    add_lenient_servicer(
        ingest_pb2_grpc.add_IngestServicer_to_server,
        IngestServicer(_Ingestor()),  # type: ignore[arg-type]
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream("/msgbridge.v1.Ingest/IngestWebhooks")(
                iter([b"\x0a\x05\xff"]), timeout=5
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in call:
                    pass
    finally:
        await server.stop(None)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_core_takes_no_more_deliveries_at_once_than_its_bound() -> None:
    started: list[bytes] = []
    release = asyncio.Event()

    async def take(request: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        started.append(request.body)
        await release.wait()
        return ingest_pb2.WebhookVerdict(http_status=200, body=request.body)

    async def batches() -> AsyncIterator[ingest_pb2.DeliveryBatch]:
        yield ingest_pb2.DeliveryBatch(
            deliveries=[
                ingest_pb2.NumberedDelivery(id=n, delivery=delivery(b"%d" % n)) for n in range(5)
            ]
        )

    answered: list[int] = []

    async def read() -> None:
        async for answers in DeliveryStream(take, max_pending=2).verdicts(batches()):
            answered.extend(a.id for a in answers.verdicts)

    reading = asyncio.create_task(read())
    await asyncio.sleep(0.1)
    assert started == [b"0", b"1"]  # the rest wait for room
    release.set()
    await asyncio.wait_for(reading, 5)
    assert sorted(answered) == [0, 1, 2, 3, 4]
    assert started == [b"0", b"1", b"2", b"3", b"4"]
