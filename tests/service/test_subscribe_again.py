"""When Subscribe runs again (docs/format.md, "When Subscribe runs again"): after a change of any
value its requests depend on — a property they or the auth use, the numbers when a request is made
per number — and not after any other change; through the real service and a fake provider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from msgbridge.v1 import gateway_pb2
from server.core import _subscriptions as subscriptions_module
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition, stop
from .test_subscribe_chain import subscription_after

PROPERTIES = [
    "API key",
    {"name": "Label", "secret": False, "required": False},
    {"name": "Unused", "secret": False, "required": False},
]


def per_number_definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url, properties=PROPERTIES))
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": provider_url + "/numbers/$number$/hook",
        "request_parameters": {"url": "$webhook_url$", "label": "$Label$"},
    }
    return json.dumps(doc)


async def update(gateway: Gateway, installation_id: str, **fields: Any) -> None:
    numbers = fields.pop("numbers", None)
    request = gateway_pb2.UpdateInstallationRequest(installation_id=installation_id, **fields)
    if numbers is not None:
        request.set_numbers = True
        request.numbers.extend(gateway_pb2.NumberAssignment(number=n) for n in numbers)
    await gateway.stub.UpdateInstallation(request)


def hooks(provider: RunningFakeProvider) -> list[tuple[str, str, str]]:
    """(number path, label, API key) of each Subscribe request the provider received."""
    return [
        (r.path, r.json["label"], dict(r.headers).get("Authorization", ""))
        for r in provider.state.requests
    ]


async def settled(gateway: Gateway, installation_id: str) -> None:
    subscription = await subscription_after(gateway, installation_id)
    assert subscription.state == gateway_pb2.Subscription.SUBSCRIBED, subscription.last_error


async def test_subscribe_runs_again_after_numbers_then_a_property_change(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    """The bug of issue 15: after the numbers changed and then a property, Subscribe never ran
    again (UpdateInstallation did not look at the subscription at all)."""
    gateway: Gateway = await start_gateway()
    await gateway.register(per_number_definition(provider.url))
    installation = await gateway.enable(
        "acme-sms", properties={"API key": "k1", "Label": "one"}, numbers={"+15550001111": []}
    )
    await settled(gateway, installation.id)
    assert hooks(provider) == [("/numbers/+15550001111/hook", "one", "Bearer k1")]

    provider.state.reset()
    await update(gateway, installation.id, numbers=["+15550001111", "+15550002222"])
    await settled(gateway, installation.id)
    assert sorted(hooks(provider)) == [
        ("/numbers/+15550001111/hook", "one", "Bearer k1"),
        ("/numbers/+15550002222/hook", "one", "Bearer k1"),
    ]

    provider.state.reset()
    await update(gateway, installation.id, properties={"Label": "two"})
    await settled(gateway, installation.id)
    assert sorted(hooks(provider)) == [
        ("/numbers/+15550001111/hook", "two", "Bearer k1"),
        ("/numbers/+15550002222/hook", "two", "Bearer k1"),
    ]

    provider.state.reset()  # the auth renders the API key: the requests change with it
    await update(gateway, installation.id, properties={"API key": "k2"})
    await settled(gateway, installation.id)
    assert sorted(hooks(provider)) == [
        ("/numbers/+15550001111/hook", "two", "Bearer k2"),
        ("/numbers/+15550002222/hook", "two", "Bearer k2"),
    ]


async def test_a_change_subscribe_does_not_depend_on_runs_nothing(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway()
    doc = json.loads(per_number_definition(provider.url))
    doc["Subscribe"]["request_url"] = provider.url + "/hook"  # once, not per number
    await gateway.register(json.dumps(doc))
    installation = await gateway.enable("acme-sms", properties={"API key": "k1", "Label": "one"})
    await settled(gateway, installation.id)
    assert len(provider.state.requests) == 1

    provider.state.reset()
    await update(gateway, installation.id, properties={"Unused": "x"})
    await update(gateway, installation.id, numbers=["+15550003333"])
    await update(gateway, installation.id, properties={"Label": "one"})  # the same value
    await asyncio.sleep(0.3)  # a run would have started at once
    got = await gateway.stub.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    )
    assert got.subscription.state == gateway_pb2.Subscription.SUBSCRIBED
    assert provider.state.requests == []

    await update(gateway, installation.id, properties={"Label": "three"})
    await settled(gateway, installation.id)
    assert hooks(provider) == [("/hook", "three", "Bearer k1")]


async def test_a_new_public_url_is_noticed_at_start_and_nothing_else_is(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    """The webhook URL is a value Subscribe depends on: an operator who moves the gateway to
    another public URL gets every subscription made again when the service starts."""
    first: Gateway = await start_gateway(public_url="https://old.example.com")
    doc = json.loads(per_number_definition(provider.url))
    doc["Subscribe"]["request_url"] = provider.url + "/hook"
    await first.register(json.dumps(doc))
    installation = await first.enable("acme-sms", properties={"API key": "k1", "Label": "one"})
    await settled(first, installation.id)
    assert provider.state.requests[0].json["url"].startswith("https://old.example.com/")
    await stop(first)

    provider.state.reset()  # the same URL again: nothing to do
    same: Gateway = await start_gateway(public_url="https://old.example.com")
    await asyncio.sleep(0.3)
    assert provider.state.requests == []
    await stop(same)

    moved: Gateway = await start_gateway(public_url="https://new.example.com")
    await settled(moved, installation.id)
    (request,) = provider.state.requests
    assert request.json["url"].startswith("https://new.example.com/")


async def test_every_installation_is_looked_at_on_start_a_page_at_a_time(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, monkeypatch: Any
) -> None:
    """The installations are read in pages at start: one past a page's end is not missed."""
    monkeypatch.setattr(subscriptions_module, "_START_PAGE", 2)
    first: Gateway = await start_gateway(public_url="https://old.example.com")
    doc = json.loads(per_number_definition(provider.url))
    doc["Subscribe"]["request_url"] = provider.url + "/hook"
    await first.register(json.dumps(doc))
    installations = [
        await first.enable(
            "acme-sms",
            org=f"org-{n}",
            numbers={f"+1555000111{n}": ["101"]},
            properties={"API key": f"k{n}"},
        )
        for n in range(5)
    ]
    for installation in installations:
        await settled(first, installation.id)
    await stop(first)

    provider.state.reset()
    moved: Gateway = await start_gateway(public_url="https://new.example.com")
    for installation in installations:
        await settled(moved, installation.id)
    urls = sorted(r.json["url"] for r in provider.state.requests)
    assert len(urls) == 5
    assert all(url.startswith("https://new.example.com/") for url in urls)
