"""(ext) Subscribe lists whose response_maps feed the requests after them (docs/format.md,
"Subscribe and Unsubscribe"), through the real service and a fake provider: one lookup per number,
then an update with the id it found."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition

NUMBERS = {"+15550001111": ["101"], "+15550002222": ["102"]}


def chained_definition(provider_url: str, **extra: Any) -> str:
    doc = json.loads(definition(provider_url))
    doc["Subscribe"] = [
        {  # once: it uses nothing that depends on a number
            "request_method": "GET",
            "request_url": provider_url + "/account",
            "response_map": {"account": {"id": "$account_id$"}},
        },
        {  # once per number: it uses $number$
            "request_method": "GET",
            "request_url": provider_url + "/$account_id$/numbers",
            "request_parameters": {"number": "$number$"},
            "response_map": {"status": "ok", "items": [{"id": "$number_id$"}], "why": "$error$"},
        },
        {  # once per number: it uses a capture of a per-number request
            "request_method": "POST",
            "request_url": provider_url + "/$account_id$/numbers/$number_id$",
            "request_parameters": {"callback": "$webhook_url$"},
        },
    ]
    doc.update(extra)
    return json.dumps(doc)


async def subscription_after(gateway: Gateway, installation_id: str) -> gateway_pb2.Subscription:
    async with asyncio.timeout(10):
        while True:
            got = await gateway.stub.GetInstallation(
                gateway_pb2.GetInstallationRequest(installation_id=installation_id)
            )
            if got.subscription.state != gateway_pb2.Subscription.PENDING:
                return got.subscription
            await asyncio.sleep(0.02)


def lookup_answer(number_id: str) -> Answer:
    return Answer(json={"status": "ok", "items": [{"id": number_id, "other": 1}], "why": None})


async def test_each_number_is_looked_up_and_updated_with_its_own_id(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway()
    await gateway.register(chained_definition(provider.url))
    provider.state.script("/account", Answer(json={"account": {"id": "AC1"}}))
    provider.state.script("/AC1/numbers", lookup_answer("PN1"), lookup_answer("PN2"))
    installation = await gateway.enable("acme-sms", numbers=NUMBERS)

    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.SUBSCRIBED, subscription.last_error
    made = [(r.method, r.path, r.query, r.json) for r in provider.state.requests]
    assert made == [
        ("GET", "/account", (), None),
        ("GET", "/AC1/numbers", (("number", "+15550001111"),), None),
        ("GET", "/AC1/numbers", (("number", "+15550002222"),), None),
        ("POST", "/AC1/numbers/PN1", (), {"callback": installation.webhook_url}),
        ("POST", "/AC1/numbers/PN2", (), {"callback": installation.webhook_url}),
    ]


async def test_an_answer_without_the_capture_fails_the_subscription_with_why(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(subscribe_retry_s=60)
    await gateway.register(chained_definition(provider.url))
    provider.state.script("/account", Answer(json={"account": {"id": "AC1"}}))
    provider.state.script("/AC1/numbers", Answer(json={"status": "ok", "items": []}))
    installation = await gateway.enable("acme-sms", numbers=NUMBERS)

    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.FAILED
    assert "request 2 (/Subscribe/1)" in subscription.last_error
    assert "does not contain $number_id$" in subscription.last_error
    assert not provider.state.requests_to("/AC1/numbers/")  # no update with a missing id


async def test_a_literal_that_does_not_match_refuses_the_step_with_the_providers_reason(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(subscribe_retry_s=60)
    await gateway.register(chained_definition(provider.url))
    provider.state.script("/account", Answer(json={"account": {"id": "AC1"}}))
    refused = {"status": "error", "items": [{"id": "x"}], "why": "number not on this account"}
    provider.state.script("/AC1/numbers", Answer(json=refused))
    installation = await gateway.enable("acme-sms", numbers=NUMBERS)

    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.FAILED
    assert subscription.last_error == (
        "request 2 (/Subscribe/1) was refused: number not on this account"
    )
