"""(ext) Per-installation variants through the real gRPC API (docs/format.md, "Variants"): two
installations of one definition, each with its own choice, send what their choice says; a
choice that is not an option is refused with the property named."""

from __future__ import annotations

import json
from typing import Any

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
    by_number, by_service = await _one_send_each(
        chosen,
        provider,
        {"API key": "k1"},
        {"API key": "k2", "Send from": "service", "Service": "MG42"},
    )
    assert by_number.json == {"from": "+15550001111", "to": "+15557654321", "content": "hello"}
    assert dict(by_number.headers)["Authorization"] == "Bearer k1"
    assert by_service.json == {"to": "+15557654321", "content": "hello", "service": "MG42"}
    headers = dict(by_service.headers)
    assert headers["X-Key"] == "k2"
    assert "Authorization" not in headers


async def _one_send_each(
    gateway: Gateway,
    provider: RunningFakeProvider,
    first: dict[str, str],
    second: dict[str, str],
) -> list[Any]:
    """Two installations with these properties, one message sent by each: what the provider got."""
    await gateway.enable("acme-sms", org="org-1", properties=first, numbers={"+15550001111": ["1"]})
    await gateway.enable(
        "acme-sms", org="org-2", properties=second, numbers={"+15550002222": ["2"]}
    )
    provider.state.script("*", Answer(json={"data": {"id": "SM1"}}))
    await gateway.send(org="org-1", **{"from": "+15550001111"})
    await gateway.send(org="org-2", **{"from": "+15550002222"})
    return list(provider.state.requests)


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


# (ext) required_when: a property only some choices need (docs/format.md, "Variants")
NEEDS = [
    {"name": "Auth", "options": ["key", "basic"]},
    {"name": "Key", "required_when": {"Auth": ["key"]}},
    {"name": "User", "secret": False, "required_when": {"Auth": ["basic"]}},
    {"name": "Password", "required_when": {"Auth": ["basic"]}},
]
BASIC = {"auth": {"type": "Basic", "token": None, "username": "$User$", "password": "$Password$"}}


@pytest.fixture
async def needs(gateway: Gateway, provider: RunningFakeProvider) -> Gateway:
    doc = json.loads(definition(provider.url, properties=NEEDS, send_file=False))
    doc["auth"] = {"type": "Bearer", "token": "$Key$"}
    doc["variants"] = {"Auth": {"basic": BASIC}}
    await gateway.register(json.dumps(doc))
    return gateway


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = rpc_details(error)["bad_request"].field_violations
    return {v.field: v.description for v in found}


async def test_each_choice_needs_only_its_own_properties(
    needs: Gateway, provider: RunningFakeProvider
) -> None:
    by_key, by_basic = await _one_send_each(
        needs, provider, {"Key": "k1"}, {"Auth": "basic", "User": "u", "Password": "p"}
    )
    assert dict(by_key.headers)["Authorization"] == "Bearer k1"
    assert dict(by_basic.headers)["Authorization"] == "Basic dTpw"  # base64("u:p")


async def test_a_property_the_choice_needs_is_named_when_missing_never_its_value(
    needs: Gateway,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await needs.enable("acme-sms", properties={"User": "someone"})
    assert _violations(caught.value) == {
        "properties[Key]": "a value is required when 'Auth' is 'key'"
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await needs.enable("acme-sms", properties={"Auth": "basic", "Key": "k-secret-1"})
    violations = _violations(caught.value)
    assert violations == {
        "properties[User]": "a value is required when 'Auth' is 'basic'",
        "properties[Password]": "a value is required when 'Auth' is 'basic'",
    }
    assert "k-secret-1" not in str(rpc_details(caught.value))


async def test_an_update_is_judged_by_the_choice_it_makes(needs: Gateway) -> None:
    installation = await needs.enable("acme-sms", properties={"Key": "k1"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await needs.stub.UpdateInstallation(
            gateway_pb2.UpdateInstallationRequest(
                installation_id=installation.id, properties={"Auth": "basic", "User": "u"}
            )
        )
    assert _violations(caught.value) == {
        "properties[Password]": "a value is required when 'Auth' is 'basic'"
    }
    await needs.stub.UpdateInstallation(
        gateway_pb2.UpdateInstallationRequest(
            installation_id=installation.id,
            properties={"Auth": "basic", "User": "u", "Password": "p"},
        )
    )
