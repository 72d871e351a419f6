"""Shipped definitions whose WebhookAuth is one of the (ext) schemes refuse, through the real
service, a documented webhook that is unsigned, signed wrongly or without its token
(docs/format.md, "WebhookAuth": answered 401, no event); test_conformance.py shows the same
webhooks, signed or carrying the token as the provider sends them, give their events. A
verification handshake with another token than the installation's is refused too.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from cryptography.hazmat.primitives.asymmetric import rsa

from client._cases import installation_properties
from client._webhook_signing import sign_webhook
from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from ..service.conftest import Gateway, GatewayFactory
from .test_conformance import FIXTURES, INTEGRATIONS

CASES = [
    ("sinch_sms", "inbound_sms_non_ascii"),
    ("surge", "inbound_sms_non_ascii"),
    ("plivo", "inbound_sms_non_ascii"),
    ("plivo", "status_delivered"),
    ("messagemedia", "inbound_sms_non_ascii"),
    ("messagemedia", "status_delivered"),
    ("whatsapp", "inbound_text_non_ascii"),
    ("whatsapp", "messages_and_statuses_in_one_body"),
    ("360dialog", "inbound_text_non_ascii"),
]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _definition(provider: str) -> dict[str, Any]:
    return _load(INTEGRATIONS / f"{provider}.json")


async def _install(
    start_gateway: GatewayFactory, provider: str, fake: RunningFakeProvider
) -> tuple[Gateway, gateway_pb2.Installation, dict[str, Any]]:
    """The shipped file registered unchanged (its provider calls sent to the fake by a
    stand-in) and an installation enabled with the case set's values and test secrets."""
    doc = _definition(provider)
    gateway: Gateway = await start_gateway(
        sidecar=True, provider_stand_in=(f"{doc['id']}={fake.url}",)
    )
    install = _load(FIXTURES / provider / "install.json")
    properties = installation_properties(install, doc.get("WebhookAuth"))
    integration = await gateway.register((INTEGRATIONS / f"{provider}.json").read_text())
    installation = await gateway.enable(
        integration.id,
        numbers=install["numbers"],
        properties=properties,
        region=install.get("region", ""),
    )
    return gateway, installation, {"properties": properties}


# Another key pair of the same size: an rsa webhook signed by someone else.
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

# A static token (docs/format.md, "WebhookAuth": `token`) signs nothing, so a changed body that
# still carries it is not refused: it is tried unsigned and with another token only.
TAMPERED = [
    (provider, webhook, tamper)
    for provider, webhook in CASES
    for tamper in ("unsigned", "wrong secret", "changed body")
    if tamper != "changed body" or _definition(provider)["WebhookAuth"]["type"] != "token"
]


@pytest.mark.parametrize(("provider", "webhook", "tamper"), TAMPERED)
async def test_a_webhook_not_signed_as_the_provider_signs_is_refused(
    provider: str,
    webhook: str,
    tamper: str,
    start_gateway: GatewayFactory,
    provider_fake: RunningFakeProvider,
) -> None:
    case = _load(FIXTURES / provider / "webhooks" / f"{webhook}.json")
    gateway, installation, install = await _install(start_gateway, provider, provider_fake)
    body = json.dumps(case["body"]).encode() if "body" in case else case["body_text"].encode()
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}"
    headers = {"Content-Type": case.get("content_type", "application/json")}  # the case default
    auth = _definition(provider)["WebhookAuth"]
    if tamper != "unsigned":
        properties = dict(install["properties"])
        if tamper == "wrong secret":
            # another value of the same form (a base64 secret stays base64); rsa: another key
            properties = {
                name: value[:-1] + ("A" if value[-1:] != "A" else "B")
                for name, value in properties.items()
            }
        headers.update(
            sign_webhook(
                auth,
                properties,
                method="POST",
                url=installation.webhook_url,
                headers=headers,
                body=body,
                **({"rsa_key": OTHER_RSA_KEY} if tamper == "wrong secret" else {}),
            )
        )
        if tamper == "changed body":
            body += b" "  # still the same JSON (or a form whose last value changed)
    before = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    async with (
        aiohttp.ClientSession() as http,
        http.post(yarl.URL(url, encoded=True), data=body, headers=headers) as answer,
    ):
        assert answer.status == 401, await answer.text()
    after = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    assert len(after.events) == len(before.events)


# A token in a body field travels in the provider's body itself (Telerivet's ``secret``).
FIELD_CASES = [("telerivet", "inbound_sms_non_ascii", "secret")]


@pytest.mark.parametrize(("provider", "webhook", "field"), FIELD_CASES)
@pytest.mark.parametrize("tamper", ["without the field", "another value", "the field twice"])
async def test_a_webhook_without_the_right_token_field_is_refused(
    provider: str,
    webhook: str,
    field: str,
    tamper: str,
    start_gateway: GatewayFactory,
    provider_fake: RunningFakeProvider,
) -> None:
    case = _load(FIXTURES / provider / "webhooks" / f"{webhook}.json")
    gateway, installation, _ = await _install(start_gateway, provider, provider_fake)
    fields = urllib.parse.parse_qsl(case["body_text"], keep_blank_values=True)
    token = dict(fields)[field]
    kept = [(k, v) for k, v in fields if k != field]
    if tamper == "another value":
        kept.append((field, token[:-1] + ("A" if token[-1:] != "A" else "B")))
    elif tamper == "the field twice":
        kept += [(field, token), (field, token + "x")]
    body = urllib.parse.urlencode(kept).encode()
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}"
    before = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            yarl.URL(url, encoded=True),
            data=body,
            headers={"Content-Type": case["content_type"]},
        ) as answer,
    ):
        assert answer.status == 401, await answer.text()
    after = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    assert len(after.events) == len(before.events)


# Meta's verification request (docs/format.md, "Verification handshakes") with a token that is not
# the installation's, or none, is refused 403 and gives no event; the right one is answered with
# the challenge (test_conformance.py, whatsapp/webhooks/handshake_verify).
@pytest.mark.parametrize(
    "query",
    [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhocK",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
    ],
)
async def test_a_verification_request_with_another_token_is_refused(
    query: str, start_gateway: GatewayFactory, provider_fake: RunningFakeProvider
) -> None:
    gateway, installation, _ = await _install(start_gateway, "whatsapp", provider_fake)
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}?{query}"
    before = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    async with aiohttp.ClientSession() as http, http.get(yarl.URL(url, encoded=True)) as answer:
        assert answer.status == 403
        assert "1158201444" not in await answer.text()
    after = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    assert len(after.events) == len(before.events)
