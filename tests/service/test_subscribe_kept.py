"""(ext) What Subscribe captures is kept per installation, sealed, for its next run and for
Unsubscribe; a step may look a resource up first and update it rather than create a second one
(docs/format.md, "Values Subscribe keeps", "Look up before create"). Through the real service, its
store, and a fake provider."""

from __future__ import annotations

import json

from msgbridge.v1 import gateway_pb2
from server.core._installations import SUBSCRIPTION_VALUE
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition
from .test_subscribe_again import settled, update
from .test_subscribe_chain import subscription_after

PROPERTIES = ["API key", {"name": "Hook name", "secret": False, "default": "msgbridge"}]


def lookup_definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url, properties=PROPERTIES))
    hooks = provider_url + "/webhooks"
    doc["Subscribe"] = [
        {
            "request_method": "GET",
            "request_url": hooks,
            "find": {"where": {"/name": "$Hook name$"}, "capture": {"hook_id": "/id"}},
        },
        {
            "request_method": "POST",
            "request_url": hooks + "/$hook_id$",
            "request_parameters": {"url": "$webhook_url$"},
            "only_if": {"present": "hook_id"},
        },
        {
            "request_method": "POST",
            "request_url": hooks,
            "request_parameters": {"name": "$Hook name$", "url": "$webhook_url$"},
            "response_map": {"id": "$hook_id$"},
            "only_if": {"absent": "hook_id"},
        },
    ]
    doc["Unsubscribe"] = {
        "request_method": "DELETE",
        "request_url": hooks + "/$hook_id$",
        "only_if": {"present": "hook_id"},
    }
    return json.dumps(doc)


def made(provider: RunningFakeProvider) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in provider.state.requests]


async def disable(gateway: Gateway, installation_id: str) -> None:
    await gateway.stub.DisableIntegration(
        gateway_pb2.DisableIntegrationRequest(installation_id=installation_id)
    )


async def test_create_when_none_is_found_and_unsubscribe_deletes_it_by_the_kept_id(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway()
    await gateway.register(lookup_definition(provider.url))
    provider.state.script(
        "/webhooks",
        Answer(json=[{"id": 3, "name": "someone else's"}]),
        Answer(json={"id": "wh-4f1e9c"}),
    )
    installation = await gateway.enable("acme-sms")
    await settled(gateway, installation.id)
    assert made(provider) == [("GET", "/webhooks"), ("POST", "/webhooks")]
    assert provider.state.requests[1].json == {
        "name": "msgbridge",
        "url": installation.webhook_url,
    }

    # Kept sealed beside the installation; never in what the API returns.
    raw = await gateway.server.store.get_installation_value(installation.id, SUBSCRIPTION_VALUE)
    assert raw is not None
    assert "wh-4f1e9c" not in raw
    assert "hook_id" not in raw
    got = await gateway.stub.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    )
    assert b"hook_id" not in got.SerializeToString()

    provider.state.reset()
    await disable(gateway, installation.id)
    assert made(provider) == [("DELETE", "/webhooks/wh-4f1e9c")]


async def test_an_existing_webhook_is_found_and_updated_rather_than_created_again(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    """Disabling without deleting, then enabling again: the provider refuses a second webhook of
    the same name, so the new installation must find the old one and update it."""
    gateway: Gateway = await start_gateway()
    await gateway.register(lookup_definition(provider.url))
    existing = [{"id": 3, "name": "other"}, {"id": 7, "name": "msgbridge", "url": "https://old"}]
    provider.state.script("/webhooks", Answer(json=existing))
    provider.state.script("/webhooks/7", Answer(json={"id": 7}))
    installation = await gateway.enable("acme-sms")
    await settled(gateway, installation.id)
    assert made(provider) == [("GET", "/webhooks"), ("POST", "/webhooks/7")]
    assert provider.state.requests[1].json == {"url": installation.webhook_url}

    provider.state.reset()
    await disable(gateway, installation.id)
    assert made(provider) == [("DELETE", "/webhooks/7")]


async def test_a_later_run_replaces_what_an_earlier_one_kept(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway()
    await gateway.register(lookup_definition(provider.url))
    provider.state.script("/webhooks", Answer(json=[]), Answer(json={"id": "first"}))
    installation = await gateway.enable("acme-sms")
    await settled(gateway, installation.id)

    # The name changed (Subscribe depends on it); the old webhook is not found by the new name.
    provider.state.reset()
    provider.state.script("/webhooks", Answer(json=[]), Answer(json={"id": "second"}))
    await update(gateway, installation.id, properties={"Hook name": "renamed"})
    await settled(gateway, installation.id)
    assert made(provider) == [("GET", "/webhooks"), ("POST", "/webhooks")]

    provider.state.reset()
    await disable(gateway, installation.id)
    assert made(provider) == [("DELETE", "/webhooks/second")]


async def test_a_list_missing_from_the_answer_fails_the_step_and_makes_nothing_more(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(subscribe_retry_s=60)
    await gateway.register(lookup_definition(provider.url))
    provider.state.script("/webhooks", Answer(json={"error": "not a list"}))
    installation = await gateway.enable("acme-sms")
    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.FAILED
    assert subscription.last_error == (
        "request 1 (/Subscribe/0): the answer has no list as the whole answer"
    )
    assert made(provider) == [("GET", "/webhooks")]


async def test_unsubscribe_uses_each_numbers_own_kept_capture(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway()
    doc = json.loads(definition(provider.url))
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": provider.url + "/numbers/$number$/hooks",
        "request_parameters": {"url": "$webhook_url$"},
        "response_map": {"id": "$hook_id$"},
    }
    doc["Unsubscribe"] = {
        "request_method": "DELETE",
        "request_url": provider.url + "/numbers/$number$/hooks/$hook_id$",
    }
    await gateway.register(json.dumps(doc))
    provider.state.script("/numbers/+15550001111/hooks", Answer(json={"id": "h1"}))
    provider.state.script("/numbers/+15550002222/hooks", Answer(json={"id": "h2"}))
    installation = await gateway.enable(
        "acme-sms", numbers={"+15550001111": [], "+15550002222": []}
    )
    await settled(gateway, installation.id)

    provider.state.reset()
    await disable(gateway, installation.id)
    assert sorted(made(provider)) == [
        ("DELETE", "/numbers/+15550001111/hooks/h1"),
        ("DELETE", "/numbers/+15550002222/hooks/h2"),
    ]


async def test_a_run_that_fails_after_creating_keeps_the_id_so_the_retry_does_not_create_again(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(subscribe_retry_s=60)
    doc = json.loads(definition(provider.url))
    doc["Subscribe"] = [
        {
            "request_method": "POST",
            "request_url": provider.url + "/hooks",
            "request_parameters": {"url": "$webhook_url$"},
            "response_map": {"id": "$hook_id$"},
            "only_if": {"absent": "hook_id"},
        },
        {"request_method": "POST", "request_url": provider.url + "/hooks/$hook_id$/activate"},
    ]
    await gateway.register(json.dumps(doc))
    provider.state.script("/hooks", Answer(json={"id": "h1"}))
    provider.state.script("/hooks/h1/activate", Answer(status=503), Answer(status=200))
    installation = await gateway.enable("acme-sms")
    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.FAILED
    assert made(provider) == [("POST", "/hooks"), ("POST", "/hooks/h1/activate")]

    provider.state.clear_requests()
    await gateway.stub.RetrySubscription(
        gateway_pb2.RetrySubscriptionRequest(installation_id=installation.id)
    )
    await settled(gateway, installation.id)
    assert made(provider) == [("POST", "/hooks/h1/activate")]
