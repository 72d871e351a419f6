"""(ext) Per-installation variants through the real gRPC API (docs/format.md, "Variants"): two
installations of one definition, each with its own choice, send what their choice says; a
choice that is not an option is refused with the property named."""

from __future__ import annotations

import json

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, definition, rpc_details

PROPERTIES = [
    "API key",
    {"name": "Send from", "options": ["number", "service"]},
    {"name": "Service", "secret": False, "required": False},
]
# The "service" choice sends from a service instead of a number, and authenticates with a
# header instead of a Bearer token.
SERVICE = {
    "auth": {"type": "Header", "token": None, "headers": {"X-Key": "$API key$"}},
    "API": {"SendMessage": {"request_parameters": {"from": None, "service": "$Service$"}}},
}


@pytest.fixture
async def chosen(gateway: Gateway, provider: RunningFakeProvider) -> Gateway:
    doc = json.loads(definition(provider.url, properties=PROPERTIES, send_file=False))
    doc["variants"] = {"Send from": {"service": SERVICE}}
    await gateway.register(json.dumps(doc))
    return gateway


async def test_two_installations_send_as_each_chose(
    chosen: Gateway, provider: RunningFakeProvider
) -> None:
    await chosen.enable(
        "acme-sms", org="org-1", properties={"API key": "k1"}, numbers={"+15550001111": ["1"]}
    )
    await chosen.enable(
        "acme-sms",
        org="org-2",
        properties={"API key": "k2", "Send from": "service", "Service": "MG42"},
        numbers={"+15550002222": ["2"]},
    )
    provider.state.script("*", Answer(json={"data": {"id": "SM1"}}))
    await chosen.send(org="org-1", **{"from": "+15550001111"})
    await chosen.send(org="org-2", **{"from": "+15550002222"})
    by_number, by_service = provider.state.requests
    assert by_number.json == {"from": "+15550001111", "to": "+15557654321", "content": "hello"}
    assert dict(by_number.headers)["Authorization"] == "Bearer k1"
    assert by_service.json == {"to": "+15557654321", "content": "hello", "service": "MG42"}
    headers = dict(by_service.headers)
    assert headers["X-Key"] == "k2"
    assert "Authorization" not in headers


async def test_an_update_changes_the_choice(chosen: Gateway, provider: RunningFakeProvider) -> None:
    installation = await chosen.enable("acme-sms", properties={"API key": "k1"})
    await chosen.stub.UpdateInstallation(
        gateway_pb2.UpdateInstallationRequest(
            installation_id=installation.id,
            properties={"Send from": "service", "Service": "MG7"},
        )
    )
    provider.state.script("*", Answer(json={"data": {"id": "SM1"}}))
    await chosen.send()
    assert provider.state.requests[-1].json["service"] == "MG7"


async def test_a_choice_that_is_not_an_option_is_refused(chosen: Gateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chosen.enable("acme-sms", properties={"API key": "k1", "Send from": "fax"})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = rpc_details(caught.value)["bad_request"].field_violations
    assert violation.field == "properties[Send from]"
    assert "'fax' is not one of 'number', 'service'" in violation.description
    installation = await chosen.enable("acme-sms", properties={"API key": "k1"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chosen.stub.UpdateInstallation(
            gateway_pb2.UpdateInstallationRequest(
                installation_id=installation.id, properties={"Send from": "Service"}
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "properties[Send from]" in str(rpc_details(caught.value)["bad_request"])
