"""Receipts that find their message by our id, and inbound messages without ``to``, over real
sockets (docs/format.md, "Receipts": by our id; "Numbers and routing": without ``to``).

A definition whose send carries ``$gateway_id$`` and whose receipt models capture it: a send with
no provider id in its answer is accepted, and its receipt moves the message — but only a receipt
that comes through the URL of the installation that sent it (or through its integration's URL);
one naming another installation's or another integration's message changes nothing and is kept
as unroutable with its reason. A message without ``to`` takes the installation's only number
through its own URL, and is unroutable through the per-integration URL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition

U = gateway_pb2.UnmatchedWebhook
M = gateway_pb2.Message
E = gateway_pb2.Event

NUMBER_A, NUMBER_B, NUMBER_C = "+15550001111", "+15550002222", "+15550003333"
NUMBER_B2 = "+15550002223"

MODELS: list[dict[str, Any]] = [
    {
        "event_key": "message",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to?$", "content": "$content$"},
        },
    },
    {
        "event_key": "delivered",
        "event_type": "messageDelivered",
        "request_method": "POST",
        "request_parameters": {"method": "$event_key$", "params": {"ref": "$gateway_id$"}},
    },
    {
        "event_key": "failed",
        "event_type": "messageFailed",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"ref": "$gateway_id$", "why": "$error?$"},
        },
    },
]  # fmt: skip


def our_id_definition(provider_url: str, integration: str) -> str:
    """Sends carry our id in a callback URL; the answer has no id (no response_map)."""
    doc = json.loads(definition(provider_url, id=integration, send_file=False))
    request = doc["API"]["SendMessage"]
    del request["response_map"]
    request["request_parameters"] = {
        "from": "$from$",
        "to": "$to$",
        "text": "$content$",
        "callback": "$webhook_url$?ref=$gateway_id$",
    }
    doc["Webhook"] = MODELS
    return json.dumps(doc)


@dataclass
class Tenants:
    """acme-sms enabled for org-a and org-b, other-sms for org-c."""

    gateway: Gateway
    http: aiohttp.ClientSession
    provider: RunningFakeProvider
    a: gateway_pb2.Installation
    b: gateway_pb2.Installation
    c: gateway_pb2.Installation

    async def post(self, body: dict[str, Any], *, to: gateway_pb2.Installation | str) -> int:
        """Post to an installation's URL, or to an integration's per-integration URL."""
        if isinstance(to, str):
            path = f"/webhooks/{to}"
        else:
            path = to.webhook_url.split("127.0.0.1:0", 1)[1]
        url = f"http://127.0.0.1:{self.gateway.server.http_port}{path}"
        async with self.http.post(url, json=body) as answer:
            await answer.read()
            return answer.status

    async def send(self, org: str, number: str) -> gateway_pb2.SendReply:
        return await self.gateway.send(org=org, **{"from": number})

    async def state(self, message_id: str) -> gateway_pb2.Message:
        return await self.gateway.stub.GetMessage(
            gateway_pb2.GetMessageRequest(message_id=message_id)
        )

    async def events(self) -> list[gateway_pb2.Event]:
        listed = await self.gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())
        return list(listed.events)

    async def kept(self) -> list[gateway_pb2.UnmatchedWebhook]:
        listed = await self.gateway.stub.ListUnmatchedWebhooks(
            gateway_pb2.ListUnmatchedWebhooksRequest()
        )
        return list(listed.webhooks)


@pytest.fixture
async def tenants(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> AsyncIterator[Tenants]:
    gateway: Gateway = await start_gateway(sidecar=True, receipt_wait_s=30.0)
    for integration in ("acme-sms", "other-sms"):
        await gateway.register(our_id_definition(provider.url, integration))
    a = await gateway.enable("acme-sms", org="org-a", numbers={NUMBER_A: ["101"]})
    b = await gateway.enable(
        "acme-sms", org="org-b", numbers={NUMBER_B: ["201"], NUMBER_B2: ["202"]}
    )
    c = await gateway.enable("other-sms", org="org-c", numbers={NUMBER_C: ["301"]})
    # Kannel-like: accepted, and no id anywhere in the answer.
    provider.state.script("*", Answer(status=202, text="0: Accepted for delivery"))
    async with aiohttp.ClientSession() as http:
        yield Tenants(gateway, http, provider, a, b, c)


def delivered(ref: str) -> dict[str, Any]:
    return {"method": "delivered", "params": {"ref": ref}}


async def test_a_send_without_a_provider_id_is_accepted_and_its_receipt_finds_it_by_our_id(
    tenants: Tenants,
) -> None:
    reply = await tenants.send("org-a", NUMBER_A)
    assert reply.provider_message_id == ""
    (sent,) = tenants.provider.state.requests
    callback = sent.json["callback"]
    assert callback == f"{tenants.a.webhook_url}?ref={reply.message_id}"
    assert (await tenants.state(reply.message_id)).state == M.SENT

    assert await tenants.post(delivered(reply.message_id), to=tenants.a) == 200
    (event,) = await tenants.events()
    assert (event.type, event.message_id, event.org_id, event.installation_id) == (
        E.MESSAGE_DELIVERED,
        reply.message_id,
        "org-a",
        tenants.a.id,
    )
    assert (getattr(event, "from"), event.to) == (NUMBER_A, "+15557654321")
    assert (await tenants.state(reply.message_id)).state == M.DELIVERED
    assert await tenants.kept() == []


async def test_a_failure_receipt_by_our_id_fails_the_message_with_its_reason(
    tenants: Tenants,
) -> None:
    reply = await tenants.send("org-b", NUMBER_B)
    failed = {"method": "failed", "params": {"ref": reply.message_id, "why": "stat:UNDELIV"}}
    # Through the per-integration URL: the message names its own installation.
    assert await tenants.post(failed, to="acme-sms") == 200
    (event,) = await tenants.events()
    assert (event.type, event.message_id, event.installation_id, event.error) == (
        E.MESSAGE_FAILED,
        reply.message_id,
        tenants.b.id,
        "stat:UNDELIV",
    )
    message = await tenants.state(reply.message_id)
    assert (message.state, message.error) == (M.FAILED, "stat:UNDELIV")


async def test_a_receipt_naming_another_installations_message_does_not_correlate(
    tenants: Tenants,
) -> None:
    theirs = await tenants.send("org-b", NUMBER_B)
    # org-a's URL, org-b's message id: nothing moves, the request is kept with the reason.
    assert await tenants.post(delivered(theirs.message_id), to=tenants.a) == 200
    assert await tenants.events() == []
    assert (await tenants.state(theirs.message_id)).state == M.SENT
    (kept,) = await tenants.kept()
    assert (kept.kind, kept.installation_id) == (U.UNROUTABLE, tenants.a.id)
    assert f"names our message id {theirs.message_id!r}" in kept.reason
    assert "no message sent through this installation" in kept.reason


async def test_a_receipt_naming_another_integrations_message_does_not_correlate(
    tenants: Tenants,
) -> None:
    theirs = await tenants.send("org-c", NUMBER_C)
    for to in ("acme-sms", tenants.a):  # acme-sms's URLs, other-sms's message
        assert await tenants.post(delivered(theirs.message_id), to=to) == 200
    assert await tenants.post(delivered("no-such-message"), to="acme-sms") == 200
    assert await tenants.events() == []
    assert (await tenants.state(theirs.message_id)).state == M.SENT
    kept = await tenants.kept()
    assert [w.kind for w in kept] == [U.UNROUTABLE] * 3
    assert sorted(w.reason.rsplit(", which ", 1)[1] for w in kept) == [
        "is no message sent through this installation",
        "is no message sent through this integration",
        "is no message sent through this integration",
    ]
    # Its own integration's URL correlates it.
    assert await tenants.post(delivered(theirs.message_id), to="other-sms") == 200
    assert (await tenants.state(theirs.message_id)).state == M.DELIVERED


async def test_a_message_without_to_takes_the_installations_only_number(
    tenants: Tenants,
) -> None:
    inbound = {"method": "message", "params": {"from": "+15557654321", "content": "hi"}}
    assert await tenants.post(inbound, to=tenants.a) == 200
    # Several numbers: the event still goes to the installation, with no number and no users.
    assert await tenants.post(inbound, to=tenants.b) == 200
    first, second = await tenants.events()
    assert (first.type, first.installation_id, first.to, list(first.users)) == (
        E.MESSAGE,
        tenants.a.id,
        NUMBER_A,
        ["101"],
    )
    assert (second.installation_id, second.to, list(second.users)) == (tenants.b.id, "", [])
    assert await tenants.kept() == []


async def test_a_message_without_to_through_the_per_integration_url_is_kept_unroutable(
    tenants: Tenants,
) -> None:
    inbound = {"method": "message", "params": {"from": "+15557654321", "content": "whose?"}}
    assert await tenants.post(inbound, to="acme-sms") == 200
    assert await tenants.events() == []
    (kept,) = await tenants.kept()
    assert (kept.kind, kept.installation_id) == (U.UNROUTABLE, "")
    assert "carries no `to` number" in kept.reason
    assert json.loads(kept.body)["params"]["content"] == "whose?"
    # Named, it is routed by its number as before.
    named = {
        "method": "message",
        "params": {"from": "+15557654321", "to": NUMBER_A, "content": "x"},
    }
    assert await tenants.post(named, to="acme-sms") == 200
    (event,) = await tenants.events()
    assert (event.installation_id, event.to) == (tenants.a.id, NUMBER_A)


async def test_a_receipt_that_overtakes_the_sends_answer_is_held_until_the_send_records_it(
    tenants: Tenants,
) -> None:
    # The provider posts the receipt while its answer to the send is still on its way: the
    # message is sending, and recording the answer must not overwrite "delivered" with "sent".
    tenants.provider.state.script(
        "*", Answer(status=202, text="0: Accepted for delivery", delay_s=1.0)
    )
    sending = asyncio.create_task(tenants.send("org-a", NUMBER_A))
    deadline = asyncio.get_running_loop().time() + 30
    while not tenants.provider.state.requests:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    ref = parse_qs(urlsplit(tenants.provider.state.requests[0].json["callback"]).query)["ref"][0]
    assert (await tenants.state(ref)).state == M.SENDING
    assert await tenants.post(delivered(ref), to=tenants.a) == 200
    assert await tenants.events() == []  # held
    reply = await sending
    assert reply.message_id == ref
    while not await tenants.events():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    (event,) = await tenants.events()
    assert (event.type, event.message_id, event.installation_id) == (
        E.MESSAGE_DELIVERED,
        ref,
        tenants.a.id,
    )
    assert (await tenants.state(ref)).state == M.DELIVERED
    assert await tenants.kept() == []
