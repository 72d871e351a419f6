"""Names as installation numbers (docs/format.md, "Numbers"): an alphanumeric sender id is kept
verbatim, so ``A0PNCHHK2`` and ``B0PNCHHK2`` — both ``02`` by their digits — are two numbers.
Inbound routing (to → installation) and the choice of the sending installation (``from``) use the
same rule, through the real service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory, rpc_details
from .test_inbound import SEED_WEBHOOKS, inbound_definition

NAME_A, NAME_B = "A0PNCHHK2", "B0PNCHHK2"


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, provider: RunningFakeProvider) -> Gateway:
    gateway: Gateway = await start_gateway(sidecar=True, receipt_wait_s=30.0)
    await gateway.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    return gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(gateway: Gateway, http: aiohttp.ClientSession, to: str, text: str) -> int:
    body = {"method": "message", "params": {"from": "+15557654321", "to": to, "content": text}}
    url = f"http://127.0.0.1:{gateway.server.http_port}/webhooks/acme-sms"
    async with http.post(url, data=json.dumps(body).encode()) as answer:
        await answer.read()
        return answer.status


async def events(gateway: Gateway) -> list[tuple[str, str, list[str]]]:
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())
    return [(e.text, e.installation_id, list(e.users)) for e in listed.events]


async def test_two_names_with_the_same_digits_route_to_their_own_installations(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    a = await gateway.enable("acme-sms", org="org-a", numbers={NAME_A: ["101"]}, region="GB")
    # Before, this was NUMBER_TAKEN: both names were keyed "02".
    b = await gateway.enable("acme-sms", org="org-b", numbers={f" {NAME_B} ": ["201"]})
    assert [n.normalized for n in a.numbers] == [NAME_A]
    assert [n.normalized for n in b.numbers] == [NAME_B]  # trimmed, case kept

    assert await post(gateway, http, NAME_B, "for b") == 200
    assert await post(gateway, http, NAME_A, "for a") == 200
    assert await post(gateway, http, "02", "for nobody") == 200  # kept as unroutable
    assert await events(gateway) == [("for b", b.id, ["201"]), ("for a", a.id, ["101"])]
    kept = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    assert [json.loads(w.body)["params"]["content"] for w in kept.webhooks] == ["for nobody"]


async def test_the_sending_installation_is_chosen_by_the_name_as_written(
    gateway: Gateway,
) -> None:
    await gateway.enable("acme-sms", org="org-1", numbers={NAME_A: ["101"], "12345": ["102"]})
    await gateway.send(org="org-1", **{"from": NAME_A})
    await gateway.send(org="org-1", **{"from": "12345"})  # a short code, by its digits
    # Names compare exactly: another name with the same digits, or another case, holds nothing.
    for other in (NAME_B, NAME_A.lower(), "02"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.send(org="org-1", **{"from": other})
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert rpc_details(caught.value)["error_info"].reason == "NUMBER_NOT_ASSIGNED"
    # A `to` is never refused for its shape.
    reply = await gateway.send(org="org-1", to="not a number!", **{"from": NAME_A})
    assert reply.message_id
