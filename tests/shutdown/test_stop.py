"""``GatewayServer.stop`` in-process (on SQLite): the drain SIGTERM runs, step by step.

Health turns NOT_SERVING before any send in flight is answered; the sends in flight all
succeed; the event streams end (OK) and a durable consumer's unacknowledged events are released
for another subscriber at once; a call made once the drain is under way is refused UNAVAILABLE
and never reaches the provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import build_server
from server.config import Settings
from server.demo import Answer, RunningFakeProvider, start_fake_provider
from server.store import EventFilter, SqliteStore
from tests.reliability._cluster import FROM_NUMBER, INTEGRATION, ORG, definition_json
from tests.reliability._webhooks import webhook_body

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def provider() -> AsyncIterator[RunningFakeProvider]:
    fake = await start_fake_provider()
    try:
        yield fake
    finally:
        await fake.aclose()


def send(text: str, to: str = "+15557654321") -> gateway_pb2.SendMessageRequest:
    # Messages to one recipient leave one at a time (docs/delivery.md, "Order within a
    # conversation"): sends meant to be in flight together go to recipients of their own.
    request = gateway_pb2.SendMessageRequest(org_id=ORG, to=to, text=text)
    setattr(request, "from", FROM_NUMBER)
    return request


async def test_stop_drains_sends_ends_streams_and_refuses_new_calls(
    tmp_path: Path, provider: RunningFakeProvider
) -> None:
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=tmp_path,
        outbound_allow=("127.0.0.1",),
        log_format="text",
    )
    server, port = await build_server(settings)
    await server.start()
    stopping: asyncio.Task[None] | None = None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = gateway_pb2_grpc.GatewayStub(channel)
    try:
        await stub.RegisterIntegration(
            gateway_pb2.RegisterIntegrationRequest(definition_json=definition_json(provider.url))
        )
        installation = await stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=ORG,
                integration_id=INTEGRATION,
                properties={"API key": "k"},
                numbers=[gateway_pb2.NumberAssignment(number=FROM_NUMBER, users=["101"])],
            )
        )
        path = "/" + installation.webhook_url.split("://", 1)[1].split("/", 1)[1]
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{server.http_port}{path}",
                data=webhook_body("before-stop", 0),
                headers={"Content-Type": "application/json"},
            ) as answer,
        ):
            assert answer.status == 200

        follower = stub.StreamEvents(gateway_pb2.StreamEventsRequest(after_cursor=0))
        (event,) = (await follower.read()).events
        consumer = stub.StreamEvents(
            gateway_pb2.StreamEventsRequest(consumer="drained", earliest=True)
        )
        assert [e.cursor for e in (await consumer.read()).events] == [event.cursor]  # not acked
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING

        provider.state.script("/messages", Answer(delay_s=1.0))
        in_flight = [
            asyncio.ensure_future(stub.SendMessage(send(f"in flight {n}", f"+1555765432{n}")))
            for n in range(3)
        ]
        await provider.state.wait_for_requests(3, path="/messages")
        stopping = asyncio.create_task(server.stop(grace=20))

        assert (await watch.read()).status == NOT_SERVING
        assert not any(call.done() for call in in_flight)  # NOT_SERVING came first
        watch.cancel()
        assert await follower.read() is grpc.aio.EOF
        assert await follower.code() == grpc.StatusCode.OK
        assert await consumer.read() is grpc.aio.EOF
        assert await consumer.code() == grpc.StatusCode.OK

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SendMessage(send("too late"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        replies = await asyncio.gather(*in_flight)
        assert [r.provider_status for r in replies] == [200, 200, 200]
        await stopping
    finally:
        await channel.close()
        if stopping is None:
            await server.stop(0)
    texts = [r.json["content"] for r in provider.state.requests_to("/messages")]
    assert sorted(texts) == ["in flight 0", "in flight 1", "in flight 2"]

    # The consumer's lease ended with its stream: any subscriber may take the event now.
    store = SqliteStore.from_file(tmp_path / "msgbridge.db")
    await store.start()
    try:
        leased = await store.lease_events(
            "drained",
            subscriber="elsewhere",
            filter=EventFilter(),
            limit=10,
            lease_s=30,
            now=datetime.now(UTC),
        )
    finally:
        await store.aclose()
    assert [e.cursor for e in leased] == [event.cursor]
