"""A separate sidecar's long-lived ``IngestWebhooks`` call to a real core (docs/operations.md,
"The sidecar at the edge"): webhooks that arrive together travel together and each becomes its
event; a core that shuts down ends the call once what it took is stored, rather than holding its
drain for the whole grace period."""

from __future__ import annotations

import asyncio
import json

import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider
from server.sidecar import CoreUnavailable, Delivery, GrpcIngestForwarder, Header

from .conftest import Gateway, GatewayFactory
from .test_inbound import SEED_WEBHOOKS, hook_path, inbound_definition


def _delivery(installation: gateway_pb2.Installation, n: int) -> Delivery:
    params = {"from": f"+1555000{n:04d}", "to": "+15550001111", "content": f"#{n}"}
    body = {"method": "message", "params": params}
    return Delivery(
        method="POST",
        path=hook_path(installation),
        headers=(Header("Content-Type", "application/json"),),
        body=json.dumps(body).encode(),
        url="http://127.0.0.1:0" + hook_path(installation),
    )


@pytest.fixture
async def core(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> tuple[Gateway, gateway_pb2.Installation]:
    gateway = await start_gateway()
    await gateway.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    return gateway, await gateway.enable("acme-sms")


async def test_webhooks_at_once_over_the_call_each_become_their_event(
    core: tuple[Gateway, gateway_pb2.Installation],
) -> None:
    gateway, installation = core
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{gateway.port}", timeout_s=30)
    try:
        verdicts = await asyncio.gather(
            *(forwarder.ingest(_delivery(installation, n)) for n in range(100))
        )
    finally:
        await forwarder.aclose()
    assert [v.http_status for v in verdicts] == [200] * 100
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    assert sorted(e.text for e in listed.events) == sorted(f"#{n}" for n in range(100))


async def test_a_core_that_shuts_down_ends_the_call_without_waiting_out_its_grace(
    core: tuple[Gateway, gateway_pb2.Installation],
) -> None:
    gateway, installation = core
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{gateway.port}", timeout_s=30)
    try:
        assert (await forwarder.ingest(_delivery(installation, 1))).http_status == 200
        # The call stays open; a drain that waited for it would take the whole 600 s.
        async with asyncio.timeout(60):
            await gateway.server.stop(grace=600)
        try:
            await forwarder.ingest(_delivery(installation, 2))
            raise AssertionError("a stopped core took a webhook")
        except CoreUnavailable:
            pass  # the provider is answered 503 and retries
    finally:
        await forwarder.aclose()
