"""Nothing lost: a subscriber cut off at random resumes with no gap, and webhooks posted while
the core is down are refused with 503 (so the provider retries) and arrive once retried."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import grpc

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider
from server.sidecar import GrpcIngestForwarder, SidecarServer, build_sidecar_app

from .conftest import Gateway, GatewayFactory, definition, stop

WEBHOOK = [
    {
        "event_key": "sms",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "id": "$messageid$",
            "from": "$from$",
            "to": "$to$",
            "text": "$content$",
        },
    }
]


def _definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url))
    doc["Webhook"] = WEBHOOK
    return json.dumps(doc)


def _body(n: int) -> bytes:
    return json.dumps(
        {"id": f"in-{n}", "from": "+15557654321", "to": "+15550001111", "text": f"#{n} ✓"}
    ).encode()


async def test_a_subscriber_cut_off_at_random_resumes_with_no_gap(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await gateway.register(_definition(provider.url))
    installation = await gateway.enable("acme-sms")
    url = installation.webhook_url.replace("127.0.0.1:0", f"127.0.0.1:{gateway.server.http_port}")
    total = 2000
    rng = random.Random(7)
    received: list[gateway_pb2.Event] = []

    async def subscriber() -> None:
        cursor = 0
        reconnects = 0
        while True:
            call = gateway.stub.StreamEvents(gateway_pb2.StreamEventsRequest(after_cursor=cursor))
            cut_after = rng.randint(20, 300)
            try:
                async for batch in call:
                    for event in batch.events:
                        received.append(event)
                        cursor = event.cursor
                    cut_after -= len(batch.events)
                    if len(received) >= total:
                        call.cancel()
                        return
                    if cut_after <= 0:
                        call.cancel()  # the subscriber goes away at a random moment
                        break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.CANCELLED
            reconnects += 1
            await asyncio.sleep(rng.random() * 0.05)  # away for a while; events keep arriving

    async def poster(numbers: list[int], http: aiohttp.ClientSession) -> None:
        for n in numbers:
            headers = {"Content-Type": "application/json"}
            async with http.post(url, data=_body(n), headers=headers) as answer:
                assert answer.status == 200

    reader = asyncio.create_task(subscriber())
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(poster(list(range(i, total, 16)), http) for i in range(16)))
    async with asyncio.timeout(60):
        await reader

    cursors = [e.cursor for e in received]
    assert cursors == sorted(set(cursors)), "events out of order or repeated"
    assert sorted(e.provider_message_id for e in received) == sorted(
        f"in-{n}" for n in range(total)
    )


async def test_webhooks_while_the_core_is_down_get_503_and_arrive_when_retried(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: object
) -> None:
    core = await start_gateway()
    port = core.port
    await core.register(_definition(provider.url))
    installation = await core.enable("acme-sms")
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{port}", timeout_s=2.0)
    app = build_sidecar_app(
        forwarder, public_url="http://127.0.0.1:0", max_body=1 << 20, request_timeout_s=10
    )
    sidecar = SidecarServer(app, "127.0.0.1", 0)
    await sidecar.start()
    http_port = sidecar.port
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    url = f"http://127.0.0.1:{http_port}{path}"
    headers = {"Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=_body(1), headers=headers) as answer:
                assert answer.status == 200
            await stop(core)
            async with http.post(url, data=_body(2), headers=headers) as answer:
                assert answer.status == 503
                assert answer.headers["Retry-After"]
            again = await start_gateway(grpc_listen=f"127.0.0.1:{port}")
            # The provider retries: the same request, now accepted.
            for _ in range(100):
                async with http.post(url, data=_body(2), headers=headers) as answer:
                    if answer.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert answer.status == 200
        listed = await again.stub.ListEvents(gateway_pb2.ListEventsRequest())
        assert [e.provider_message_id for e in listed.events] == ["in-1", "in-2"]
    finally:
        await forwarder.aclose()
        await sidecar.aclose()
