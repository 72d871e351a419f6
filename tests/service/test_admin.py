"""Integrations and installations: versions, property forms, secrets never returned, restarts."""

from __future__ import annotations

import json

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition, stop


async def test_register_returns_the_property_form_capabilities_and_versions(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    text = definition(
        provider.url,
        properties=[
            "API key",
            {"name": "Region", "secret": False, "required": False, "default": "us"},
        ],
        parameters={"from": "$from$", "to": "$to$", "content": "$content$", "r": "$Region$"},
    )
    dry = await gateway.stub.RegisterIntegration(
        gateway_pb2.RegisterIntegrationRequest(definition_json=text, validate_only=True)
    )
    assert dry.validate_only and dry.integration.version == 0
    listed = await gateway.stub.ListIntegrations(gateway_pb2.ListIntegrationsRequest())
    assert list(listed.integrations) == []

    first = await gateway.register(text)
    second = await gateway.register(text)
    assert (first.version, second.version) == (1, 2)
    form = {(p.name, p.secret, p.required, p.default) for p in second.properties}
    assert form == {("API key", True, True, ""), ("Region", False, False, "us")}
    caps = second.capabilities
    assert (caps.send_message, caps.send_file, caps.inbound_sms, caps.auth) == (
        True,
        True,
        True,
        "Bearer",
    )
    assert not caps.delivery_receipts
    got = await gateway.stub.GetIntegration(
        gateway_pb2.GetIntegrationRequest(integration_id="acme-sms", version=1)
    )
    assert got.version == 1 and json.loads(got.definition_json)["id"] == "acme-sms"


async def test_secret_values_are_never_returned(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(
        definition(
            provider.url,
            properties=["API key", {"name": "Account", "secret": False}],
            parameters={"from": "$from$", "to": "$to$", "content": "$content$", "a": "$Account$"},
        )
    )
    installation = await gateway.enable(
        "acme-sms", properties={"API key": "super-secret-value", "Account": "AC-1"}
    )
    for reply in (
        installation,
        await gateway.stub.GetInstallation(
            gateway_pb2.GetInstallationRequest(installation_id=installation.id)
        ),
        (
            await gateway.stub.ListInstallations(gateway_pb2.ListInstallationsRequest())
        ).installations[0],
    ):
        values = {p.name: (p.value, p.set, p.secret) for p in reply.properties}
        assert values == {"API key": ("", True, True), "Account": ("AC-1", True, False)}
        assert "super-secret-value" not in str(reply)
    assert installation.webhook_url.startswith("http://127.0.0.1:0/webhooks/acme-sms/")
    token = installation.webhook_url.rsplit("/", 1)[1]
    assert len(token) >= 40


async def test_store_survives_a_restart(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    first = await start_gateway()
    await first.register(definition(provider.url))
    installation = await first.enable("acme-sms", numbers={"+15550001111": ["101", "102"]})
    reply = await first.send(text="before restart")
    await stop(first)

    second = await start_gateway()
    integration = await second.stub.GetIntegration(
        gateway_pb2.GetIntegrationRequest(integration_id="acme-sms")
    )
    assert integration.installation_count == 1
    again = await second.stub.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    )
    assert again.webhook_url == installation.webhook_url
    assert [(n.normalized, list(n.users)) for n in again.numbers] == [
        ("+15550001111", ["101", "102"])
    ]
    message = await second.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=reply.message_id)
    )
    assert message.text == "before restart" and message.state == gateway_pb2.Message.SENT
    # The sealed API key still opens after the restart: a send authenticates as before.
    await second.send(text="after restart")
    assert [dict(r.headers)["Authorization"] for r in provider.state.requests] == [
        "Bearer key-123"
    ] * 2


async def test_disable_frees_the_number_and_update_changes_numbers(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    first = await gateway.enable("acme-sms", org="org-1")
    disabled = await gateway.stub.DisableIntegration(
        gateway_pb2.DisableIntegrationRequest(installation_id=first.id)
    )
    assert not disabled.enabled
    second = await gateway.enable("acme-sms", org="org-2")
    updated = await gateway.stub.UpdateInstallation(
        gateway_pb2.UpdateInstallationRequest(
            installation_id=second.id,
            numbers=[gateway_pb2.NumberAssignment(number="+15550003333", users=["7"])],
            set_numbers=True,
            properties={"API key": "rotated"},
        )
    )
    assert [n.normalized for n in updated.numbers] == ["+15550003333"]
    await gateway.send(org="org-2", **{"from": "+15550003333"})
    assert dict(provider.state.requests[-1].headers)["Authorization"] == "Bearer rotated"
