"""(ext) Extra fields end to end over real sockets (docs/format.md, "Built values, extra fields
and validation patterns"): a webhook's kept captures and built values reach a StreamEvents
subscriber and the event log; a value that fails its validation pattern is kept as unmatched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory
from .test_inbound import Subscriber, hook_path, inbound_definition, post

LOCATION: dict[str, Any] = {
    "event_key": "location",
    "event_type": "message",
    "request_method": "POST",
    "request_parameters": {
        "from": "$from$",
        "to": "$to$",
        "id": "$messageid$",
        "lat": "$lat$",
        "long": "$long$",
        "profile": {"name": "$contact_name?$"},
        "segments": "$segments?$",
    },
    "build": {"text": "geo:$lat$,$long$"},
    "keep": ["contact_name", "segments"],
    "patterns": {"lat": "^-?[0-9.]+$", "long": "^-?[0-9.]+$", "segments": "^[0-9]{1,3}$"},
}


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    started: Gateway = await start_gateway(sidecar=True, receipt_wait_s=30.0)
    return started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_kept_fields_reach_a_subscriber_and_the_event_log(
    gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await gateway.register(inbound_definition(provider.url, [LOCATION]))
    installation = await gateway.enable("acme-sms")
    subscriber = Subscriber(gateway, gateway_pb2.StreamEventsRequest(earliest=True))
    body = {
        "from": "+15557654321",
        "to": "+15550001111",
        "id": "loc-1",
        "lat": "52.52",
        "long": "-13.405",
        "profile": {"name": "Åsa 👋"},
        "segments": 2,
    }
    assert (await post(http, gateway, hook_path(installation), body))[0] == 200
    (event,) = await subscriber.wait_for(1)
    await subscriber.close()
    assert event.type == gateway_pb2.Event.MESSAGE
    assert event.text == "geo:52.52,-13.405"
    assert dict(event.fields) == {"contact_name": "Åsa 👋", "segments": "2"}
    assert dict(event.metadata) == {}
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())
    assert dict(listed.events[-1].fields) == {"contact_name": "Åsa 👋", "segments": "2"}


async def test_a_value_failing_its_pattern_is_kept_as_unmatched_with_the_reason(
    gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await gateway.register(inbound_definition(provider.url, [LOCATION]))
    installation = await gateway.enable("acme-sms")
    body = {
        "from": "+15557654321",
        "to": "+15550001111",
        "id": "loc-2",
        "lat": "x",
        "long": "1",
        "profile": {},
    }
    assert (await post(http, gateway, hook_path(installation), body))[0] == 200
    listed = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    (kept,) = listed.webhooks
    assert kept.kind == gateway_pb2.UnmatchedWebhook.UNMATCHED
    assert "$lat$ 'x' does not match its pattern" in kept.reason
    assert json.loads(kept.body) == body
