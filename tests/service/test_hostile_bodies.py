"""Hostile webhook bodies over real sockets: parsing and matching them never holds the service's
event loop, so unrelated HTTP and gRPC calls are answered promptly meanwhile (ingest and replay)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.demo import RunningFakeProvider

from .conftest import SEED_MODELS, Gateway, GatewayFactory, definition

# Generous: on the event loop, reading each of these bodies held it 1.5 s or more (2.1 s for
# the multipart body, 15 s for eight at once); now it is free within milliseconds.
PROMPT_S = 1.0

# 19,000 tiny parts in 1 MB: ~110 µs each when the email package read them on the loop.
MULTIPART = (
    b"".join(b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n' for _ in range(19_000))
    + b"--B--\r\n",
    "multipart/form-data; boundary=B",
)
# A batch of 90,000 payloads (within the limit of values) that no model matches: each is
# tried against every model, ~17 µs each.
BATCH = (b"[" + b",".join([b"{}"] * 90_000) + b"]", "application/json")


@pytest.fixture
async def gateway(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> AsyncIterator[Gateway]:
    gateway: Gateway = await start_gateway(sidecar=True, webhook_max_body=1 << 20)
    doc = json.loads(definition(provider.url))
    doc["Webhook"] = [dict(SEED_MODELS[0], event_key=key) for key in ("message", "sms", "text")]
    await gateway.register(json.dumps(doc))
    yield gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def slowest_answer(
    gateway: Gateway, http: aiohttp.ClientSession, work: list[asyncio.Task[object]]
) -> float:
    """The longest that /healthz or a gRPC call took, asked over and over until ``work`` is done
    (the first is asked once ``work``'s requests are on their way)."""
    health = f"http://127.0.0.1:{gateway.server.http_port}/healthz"

    async def healthz() -> None:
        async with http.get(health) as response:
            assert response.status == 200

    async def grpc_call() -> None:
        await gateway.stub.ListIntegrations(gateway_pb2.ListIntegrationsRequest())

    calls: tuple[Callable[[], Awaitable[None]], ...] = (healthz, grpc_call)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)
    slowest = 0.0
    async with asyncio.timeout(120):
        while not all(task.done() for task in work):
            for call in calls:
                started = loop.time()
                await call()
                slowest = max(slowest, loop.time() - started)
    return slowest


async def send(
    http: aiohttp.ClientSession, gateway: Gateway, body: bytes, content_type: str
) -> int:
    url = f"http://127.0.0.1:{gateway.server.http_port}/webhooks/acme-sms"
    async with http.post(url, data=body, headers={"Content-Type": content_type}) as response:
        return response.status


async def kept_batch(gateway: Gateway, http: aiohttp.ClientSession) -> gateway_pb2.UnmatchedWebhook:
    """Post BATCH, which no model matches, and return the webhook kept for it."""
    assert await send(http, gateway, *BATCH) == 200
    page = await gateway.stub.ListUnmatchedWebhooks(
        gateway_pb2.ListUnmatchedWebhooksRequest(page_size=1)
    )
    (kept,) = page.webhooks
    return kept


async def test_unrelated_calls_are_answered_promptly_while_hostile_bodies_are_read(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    bodies = [MULTIPART] * 4 + [BATCH]
    work: list[asyncio.Task[object]] = [
        asyncio.create_task(send(http, gateway, *body)) for body in bodies
    ]
    slowest = await slowest_answer(gateway, http, work)
    assert slowest < PROMPT_S, f"an unrelated call waited {slowest:.2f} s"
    assert [task.result() for task in work] == [400] * 4 + [200]  # too many parts; kept


async def test_unrelated_calls_are_answered_promptly_while_a_hostile_body_is_replayed(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kept = await kept_batch(gateway, http)
    # A default client: the reply's reason says how many payloads went unmatched and describes
    # only the first few.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        async def replay() -> object:
            return await stub.ReplayWebhook(gateway_pb2.ReplayWebhookRequest(id=kept.id))

        work: list[asyncio.Task[object]] = [asyncio.create_task(replay())]
        slowest = await slowest_answer(gateway, http, work)
    assert list(work[0].result().events) == []  # type: ignore[attr-defined]
    assert slowest < PROMPT_S, f"an unrelated call waited {slowest:.2f} s during the replay"


async def test_a_batch_no_model_matches_is_kept_with_a_reason_that_counts_it(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kept = await kept_batch(gateway, http)
    assert kept.reason.startswith("90000 payloads matched no model; the first 20 are described")
    assert kept.reason.count("payload /") <= 20
