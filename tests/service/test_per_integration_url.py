"""The per-integration webhook URL ``/webhooks/{integration}`` over real sockets (README,
"Inbound"; docs/format.md, webhook signatures): a request is routed by its ``to`` number (a
receipt by its message) to the installation that holds it, and its signature is checked with
that installation's secret — one signed with another installation's secret is refused 401,
recorded and makes no event; one no installation owns cannot be verified and is refused too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from client._webhook_signing import sign_webhook
from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory
from .test_inbound import SEED_WEBHOOKS, inbound_definition

U = gateway_pb2.UnmatchedWebhook

# The signature covers the URL as well: the per-integration URL is what the provider signs.
AUTH: dict[str, Any] = {
    "type": "hmac",
    "algorithm": "sha256",
    "header": "X-Signature",
    "secret": "$Webhook secret$",
    "encoding": "hex",
    "signed": "url+body",
}
NUMBER_A, NUMBER_B, NOBODYS = "+15550001111", "+15550002222", "+15550009999"
SECRET_A, SECRET_B = "whsec-aaaa-0123456789", "whsec-bbbb-9876543210"


@dataclass
class TwoOrgs:
    """One integration enabled for two organisations, each holding its own number and secret."""

    gateway: Gateway
    http: aiohttp.ClientSession
    a: gateway_pb2.Installation
    b: gateway_pb2.Installation

    async def post(
        self, body: dict[str, Any], *, secret: str | None, integration: str = "acme-sms"
    ) -> int:
        """Post to the per-integration URL, signed with ``secret`` (unsigned when None)."""
        data = json.dumps(body).encode()
        path = f"/webhooks/{integration}"
        # The URL the provider was given: the service's public URL and the path.
        public = self.a.webhook_url.split("/webhooks/", 1)[0] + path
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers |= sign_webhook(
                AUTH,
                {"Webhook secret": secret},
                method="POST",
                url=public,
                headers=headers,
                body=data,
            )
        url = f"http://127.0.0.1:{self.gateway.server.http_port}{path}"
        async with self.http.post(url, data=data, headers=headers) as answer:
            await answer.read()
            return answer.status

    async def events(self) -> list[tuple[str, str, str, list[str]]]:
        """(text or message id, org, installation, users) of every stored event."""
        listed = await self.gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())
        return [
            (e.text or e.message_id, e.org_id, e.installation_id, list(e.users))
            for e in listed.events
        ]

    async def kept(self) -> list[gateway_pb2.UnmatchedWebhook]:
        listed = await self.gateway.stub.ListUnmatchedWebhooks(
            gateway_pb2.ListUnmatchedWebhooksRequest()
        )
        return list(listed.webhooks)


def message(to: str, text: str) -> dict[str, Any]:
    return {"method": "message", "params": {"from": "+15557654321", "to": to, "content": text}}


@pytest.fixture
async def orgs(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> AsyncIterator[TwoOrgs]:
    gateway: Gateway = await start_gateway(sidecar=True, receipt_wait_s=30.0)
    await gateway.register(
        inbound_definition(
            provider.url,
            SEED_WEBHOOKS,
            WebhookAuth=AUTH,
            properties=["API key", "Webhook secret"],
        )
    )
    a = await gateway.enable(
        "acme-sms",
        org="org-a",
        numbers={NUMBER_A: ["101"]},
        properties={"API key": "key-a", "Webhook secret": SECRET_A},
    )
    b = await gateway.enable(
        "acme-sms",
        org="org-b",
        numbers={NUMBER_B: ["201", "202"]},
        properties={"API key": "key-b", "Webhook secret": SECRET_B},
    )
    async with aiohttp.ClientSession() as http:
        yield TwoOrgs(gateway, http, a, b)


async def test_a_message_is_routed_by_its_number_to_the_installation_that_holds_it(
    orgs: TwoOrgs,
) -> None:
    assert await orgs.post(message(NUMBER_B, "for b"), secret=SECRET_B) == 200
    assert await orgs.post(message(NUMBER_A, "for a"), secret=SECRET_A) == 200
    assert await orgs.events() == [
        ("for b", "org-b", orgs.b.id, ["201", "202"]),
        ("for a", "org-a", orgs.a.id, ["101"]),
    ]
    assert await orgs.kept() == []


async def test_a_receipt_is_routed_by_its_message_and_checked_with_that_installations_secret(
    orgs: TwoOrgs,
) -> None:
    reply = await orgs.gateway.send(org="org-b", **{"from": NUMBER_B})
    receipt = {"method": "delivered", "params": {"messageid": reply.provider_message_id}}
    assert await orgs.post(receipt, secret=SECRET_A) == 401
    assert await orgs.events() == []
    assert await orgs.post(receipt, secret=SECRET_B) == 200
    assert await orgs.events() == [(reply.message_id, "org-b", orgs.b.id, [])]


async def test_a_signature_that_does_not_verify_with_the_owners_secret_is_refused_and_recorded(
    orgs: TwoOrgs,
) -> None:
    for secret in (SECRET_A, "not-the-secret", None):  # another org's secret, a wrong one, none
        assert await orgs.post(message(NUMBER_B, "forged"), secret=secret) == 401
    assert await orgs.events() == []
    kept = await orgs.kept()
    assert [(w.kind, w.integration_id, w.path) for w in kept] == [
        (U.UNAUTHENTICATED, "acme-sms", "/webhooks/acme-sms")
    ] * 3
    assert sorted(w.reason for w in kept) == sorted(
        ["the signature does not match"] * 2 + ["the X-Signature header is missing"]
    )
    # The genuine request is accepted.
    assert await orgs.post(message(NUMBER_B, "genuine"), secret=SECRET_B) == 200
    assert await orgs.events() == [("genuine", "org-b", orgs.b.id, ["201", "202"])]


async def test_a_number_no_installation_holds_cannot_be_verified_and_is_refused(
    orgs: TwoOrgs,
) -> None:
    assert await orgs.post(message(NOBODYS, "to nobody"), secret=SECRET_A) == 401
    # A disabled installation holds its number no more.
    await orgs.gateway.stub.DisableIntegration(
        gateway_pb2.DisableIntegrationRequest(installation_id=orgs.b.id)
    )
    assert await orgs.post(message(NUMBER_B, "to a disabled one"), secret=SECRET_B) == 401
    assert await orgs.events() == []
    kept = await orgs.kept()
    assert [(w.kind, w.reason) for w in kept] == [
        (U.UNAUTHENTICATED, "no installation to verify the signature against")
    ] * 2
    assert {json.loads(w.body)["params"]["content"] for w in kept} == {
        "to nobody",
        "to a disabled one",
    }


async def test_without_webhook_auth_an_unroutable_request_is_kept_and_answered_2xx(
    orgs: TwoOrgs, provider: RunningFakeProvider
) -> None:
    plain = json.loads(inbound_definition(provider.url, SEED_WEBHOOKS))
    plain["id"] = plain["name"] = "plain-sms"
    await orgs.gateway.register(json.dumps(plain))
    installation = await orgs.gateway.enable("plain-sms", numbers={NUMBER_A: ["301"]})
    # 2xx, so that the provider does not retry for ever; kept, listable and replayable.
    assert await orgs.post(message(NOBODYS, "lost"), secret=None, integration="plain-sms") == 200
    assert await orgs.post(message(NUMBER_A, "found"), secret=None, integration="plain-sms") == 200
    assert await orgs.events() == [("found", "org-1", installation.id, ["301"])]
    (kept,) = await orgs.kept()
    assert (kept.kind, kept.integration_id, kept.path) == (
        U.UNROUTABLE,
        "plain-sms",
        "/webhooks/plain-sms",
    )
    assert "no enabled installation holds that number" in kept.reason
