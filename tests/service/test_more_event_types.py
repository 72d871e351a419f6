"""The later event types end to end (docs/format.md, "More event types"): an opt-out, an opt-in,
a read receipt and a status update reach a StreamEvents subscriber that names their type, and not
one whose filter is empty; read receipts and status updates leave the message's state alone."""

from __future__ import annotations

from typing import Any

import aiohttp

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import SEED_MODELS, Gateway
from .test_inbound import (
    Subscriber,
    hook_path,
    http,  # noqa: F401 (a fixture)
    inbound,  # noqa: F401 (a fixture)
    inbound_definition,
    post,
)

E = gateway_pb2.Event
LATER = [E.OPTED_OUT, E.OPTED_IN, E.MESSAGE_READ, E.MESSAGE_STATUS]

WEBHOOKS: list[dict[str, Any]] = [
    *SEED_MODELS,
    {
        "event_key": "delivered",
        "event_type": "messageDelivered",
        "request_method": "POST",
        "request_parameters": {"method": "$event_key$", "params": {"messageid": "$messageid$"}},
    },
    {
        "event_key": "stop",
        "event_type": "optedOut",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "keyword": "$content?$"},
        },
    },
    {
        "event_key": "start",
        "event_type": "optedIn",
        "request_method": "POST",
        "request_parameters": {"method": "$event_key$", "params": {"from": "$from$", "to": "$to$"}},
    },
    {
        "event_key": "read",
        "event_type": "messageRead",
        "request_method": "POST",
        "request_parameters": {"method": "$event_key$", "params": {"messageid": "$messageid$"}},
    },
    {
        "event_key": "status",
        "event_type": "messageStatus",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"messageid": "$messageid$", "status": "$status$"},
        },
    },
]


async def _state(gateway: Gateway, message_id: str) -> int:
    message = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=message_id))
    return message.state


async def test_later_types_reach_only_a_subscriber_that_names_them(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await inbound.register(inbound_definition(provider.url, WEBHOOKS))
    installation = await inbound.enable(
        "acme-sms", numbers={"+61123456789": ["101"], "+15550001111": []}
    )
    reply = await inbound.send(metadata={"ticket": "T-1"})
    asking = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True, types=LATER))
    everything = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    path = hook_path(installation)
    numbers = {"from": "+61855555555", "to": "+61123456789"}
    posts = [
        {"method": "stop", "params": {**numbers, "keyword": "STOP"}},
        {"method": "start", "params": numbers},
        {
            "method": "status",
            "params": {"messageid": reply.provider_message_id, "status": "queued"},
        },
        {"method": "delivered", "params": {"messageid": reply.provider_message_id}},
        {"method": "read", "params": {"messageid": reply.provider_message_id}},
        {
            "method": "status",
            "params": {"messageid": reply.provider_message_id, "status": "buffered"},
        },
    ]
    for body in posts:
        assert (await post(http, inbound, path, body)) == (200, "")

    later = await asking.wait_for(5)
    classic = await everything.wait_for(1)
    await asking.close()
    await everything.close()

    assert [e.type for e in later] == [
        E.OPTED_OUT,
        E.OPTED_IN,
        E.MESSAGE_STATUS,
        E.MESSAGE_READ,
        E.MESSAGE_STATUS,
    ]
    stop, start, queued, read, buffered = later
    # Opt-outs are about a number: routed by `to`, with its users, and no message.
    assert (getattr(stop, "from"), stop.to, stop.text) == ("+61855555555", "+61123456789", "STOP")
    assert stop.installation_id == installation.id and list(stop.users) == ["101"]
    assert stop.message_id == "" and start.message_id == ""
    # Reports on our message: correlated like any receipt.
    for event in (queued, read, buffered):
        assert event.message_id == reply.message_id
        assert dict(event.metadata) == {"ticket": "T-1"}
    assert (queued.status, buffered.status) == ("queued", "buffered")
    # The subscriber that named no type got only the delivery receipt.
    assert [e.type for e in classic] == [E.MESSAGE_DELIVERED]
    # A status update and a read receipt change no state: delivered stays delivered.
    assert await _state(inbound, reply.message_id) == gateway_pb2.Message.DELIVERED


async def test_a_status_update_leaves_a_sent_message_sent_and_list_events_filters_alike(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await inbound.register(inbound_definition(provider.url, WEBHOOKS))
    installation = await inbound.enable("acme-sms")
    reply = await inbound.send()
    body = {"method": "status", "params": {"messageid": reply.provider_message_id, "status": "x"}}
    assert (await post(http, inbound, hook_path(installation), body)) == (200, "")
    read = {"method": "read", "params": {"messageid": reply.provider_message_id}}
    assert (await post(http, inbound, hook_path(installation), read)) == (200, "")

    named = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest(types=LATER))
    unnamed = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())
    assert [e.type for e in named.events] == [E.MESSAGE_STATUS, E.MESSAGE_READ]
    assert list(unnamed.events) == []
    # Neither moves the message: it stays sent (a read receipt is not a delivery report).
    assert await _state(inbound, reply.message_id) == gateway_pb2.Message.SENT


async def test_an_opt_out_through_the_integration_url_goes_to_the_holder_of_its_number(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await inbound.register(inbound_definition(provider.url, WEBHOOKS))
    installation = await inbound.enable("acme-sms", numbers={"+61123456789": ["101"]})
    held = {"method": "stop", "params": {"from": "+61855555555", "to": "+61123456789"}}
    nobody = {"method": "stop", "params": {"from": "+61855555555", "to": "+61999999999"}}
    assert (await post(http, inbound, "/webhooks/acme-sms", held)) == (200, "")
    assert (await post(http, inbound, "/webhooks/acme-sms", nobody)) == (200, "")

    listed = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest(types=[E.OPTED_OUT]))
    (event,) = listed.events
    assert event.installation_id == installation.id and list(event.users) == ["101"]
    unmatched = await inbound.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    (kept,) = unmatched.webhooks
    assert kept.kind == gateway_pb2.UnmatchedWebhook.UNROUTABLE
    assert "optedOut event to +61999999999" in kept.reason
