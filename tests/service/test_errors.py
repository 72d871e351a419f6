"""Every error mapping of the send and admin paths: the code and the parsed google.rpc details."""

from __future__ import annotations

import asyncio
import json
import socket

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition, rpc_details


async def _fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


@pytest.fixture
async def ready(gateway: Gateway, provider: RunningFakeProvider) -> Gateway:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    return gateway


async def test_invalid_send_request_lists_field_violations(ready: Gateway) -> None:
    error = await _fails(ready.stub.SendMessage(gateway_pb2.SendMessageRequest(org_id="org-1")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_details(error)
    fields = {v.field for v in details["bad_request"].field_violations}
    assert fields == {"from", "to", "text"}
    assert details["error_info"].reason == "INVALID_REQUEST"
    assert details["error_info"].domain == "msgbridge"


async def test_to_is_never_refused_for_its_shape(
    ready: Gateway, provider: RunningFakeProvider
) -> None:
    for to in ("ACME-ALERTS", "12345", "not a number at all"):
        reply = await ready.send(to=to)
        assert reply.provider_status == 200
    assert [r.json["to"] for r in provider.state.requests] == [
        "ACME-ALERTS",
        "12345",
        "not a number at all",
    ]


async def test_invalid_definition_lists_every_problem_with_its_pointer(gateway: Gateway) -> None:
    broken = json.dumps(
        {
            "id": "x",
            "name": "x",
            "class": "mms",
            "API": {"SendMessage": {"request_url": "ftp://a/$nope$"}},
            "Webhooks": [],
        }
    )
    error = await _fails(gateway.register(broken))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_details(error)
    assert details["error_info"].reason == "INVALID_DEFINITION"
    pointers = {v.field for v in details["bad_request"].field_violations}
    assert {"/class", "/Webhooks"} <= pointers
    assert any(p.startswith("/API/SendMessage") for p in pointers)


async def test_unknown_org_and_integration_are_not_found(ready: Gateway) -> None:
    error = await _fails(ready.send(org="nobody"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert rpc_details(error)["error_info"].reason == "INSTALLATION_NOT_FOUND"

    error = await _fails(ready.send(integration_id="other"))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    error = await _fails(
        ready.stub.GetIntegration(gateway_pb2.GetIntegrationRequest(integration_id="nope"))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert rpc_details(error)["error_info"].reason == "INTEGRATION_NOT_FOUND"

    error = await _fails(
        ready.stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(org_id="o", integration_id="nope")
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_from_not_held_is_permission_denied(
    ready: Gateway, provider: RunningFakeProvider
) -> None:
    error = await _fails(ready.send(**{"from": "+15559999999"}))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    info = rpc_details(error)["error_info"]
    assert info.reason == "NUMBER_NOT_ASSIGNED"
    assert provider.state.requests == []


@pytest.mark.parametrize("status", [401, 403])
async def test_provider_credentials_refused_is_failed_precondition(
    ready: Gateway, provider: RunningFakeProvider, status: int
) -> None:
    provider.state.script("/messages", Answer(status=status, json={"error": "bad key"}))
    error = await _fails(ready.send())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rpc_details(error)["error_info"]
    assert info.reason == "PROVIDER_CREDENTIALS"
    assert info.metadata["provider_status"] == str(status)
    assert info.metadata["integration"] == "acme-sms"


@pytest.mark.parametrize("status", [400, 422])
async def test_provider_rejection_is_invalid_argument_with_excerpt(
    ready: Gateway, provider: RunningFakeProvider, status: int
) -> None:
    provider.state.script("/messages", Answer(status=status, json={"error": "To is not valid"}))
    error = await _fails(ready.send())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = rpc_details(error)["error_info"]
    assert info.reason == "PROVIDER_REJECTED"
    assert "To is not valid" in info.metadata["provider_excerpt"]
    assert "To is not valid" in (error.details() or "")


async def test_rate_limit_beyond_the_deadline_is_replied_queued(
    ready: Gateway, provider: RunningFakeProvider
) -> None:
    # Retry-After beyond the caller's deadline: the queue keeps the message for its retry, and
    # the caller hears so at once (docs/delivery.md, "Replies").
    provider.state.script("/messages", Answer(status=429, headers=(("Retry-After", "120"),)))
    reply = await ready.stub.SendMessage(_request(), timeout=5)
    assert reply.state == gateway_pb2.Message.QUEUED
    message = await ready.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=reply.message_id)
    )
    assert message.state == gateway_pb2.Message.QUEUED
    [attempt] = message.attempt_log
    assert attempt.provider_status == 429 and attempt.reason == "PROVIDER_RATE_LIMITED"
    wait = message.next_attempt_at.ToSeconds() - attempt.ended_at.ToSeconds()
    assert 119 <= wait <= 121  # Retry-After, honoured
    assert len(provider.state.requests) == 1
    await ready.stub.CancelMessage(gateway_pb2.CancelMessageRequest(message_id=reply.message_id))


async def test_rate_limit_with_short_retry_after_is_retried(
    ready: Gateway, provider: RunningFakeProvider
) -> None:
    provider.state.script(
        "/messages", Answer(status=429, headers=(("Retry-After", "0"),)), Answer(status=200)
    )
    reply = await ready.send()
    assert reply.attempts == 2
    assert len(provider.state.requests) == 2


@pytest.mark.parametrize(("status", "calls"), [(500, 1), (502, 1), (503, 5)])
async def test_provider_failure_is_unavailable(
    ready: Gateway, provider: RunningFakeProvider, status: int, calls: int
) -> None:
    provider.state.script("/messages", Answer(status=status, text="upstream down"))
    error = await _fails(ready.send())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = rpc_details(error)["error_info"]
    assert info.reason == "PROVIDER_UNAVAILABLE"
    assert info.metadata["provider_status"] == str(status)
    # A 500 or 502 may have been processed: never retried unless the definition says it is
    # safe; a 503 is retried until the attempts run out (docs/delivery.md, "Retries").
    assert len(provider.state.requests) == calls


async def test_unreachable_provider_is_unavailable(gateway: Gateway) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await gateway.register(definition(f"http://127.0.0.1:{port}"))
    await gateway.enable("acme-sms")
    error = await _fails(gateway.send())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = rpc_details(error)["error_info"]
    assert info.reason == "PROVIDER_UNREACHABLE"
    assert info.metadata["provider_status"] == "0"


async def test_a_send_at_the_provider_at_the_callers_deadline_is_replied_sending(
    ready: Gateway, provider: RunningFakeProvider
) -> None:
    # Not DEADLINE_EXCEEDED any more: the message is the gateway's to finish, and its outcome
    # follows as an event (docs/delivery.md, "Replies").
    provider.state.script("/messages", Answer(delay_s=600))  # long after the deadline
    reply = await ready.stub.SendMessage(_request(), timeout=1.0)
    assert reply.state == gateway_pb2.Message.SENDING
    assert reply.message_id
    await asyncio.sleep(0)


async def test_a_provider_timeout_is_an_unknown_outcome(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await start_gateway(send_deadline_s=5.0, provider_timeout_s=0.3)
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    provider.state.script("/messages", Answer(delay_s=600))  # long after the timeout
    error = await _fails(gateway.send())
    # The provider may have the message: never sent again, and gRPC's word for "may have
    # completed" (docs/delivery.md, "Retries").
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    info = rpc_details(error)["error_info"]
    assert info.reason == "OUTCOME_UNKNOWN"
    assert info.metadata["integration"] == "acme-sms"
    assert len(provider.state.requests) == 1


async def test_refused_by_response_map_condition_is_failed_precondition(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(
        definition(
            provider.url,
            response_map={
                "messages": [{"status": "0", "message-id": "$messageid$", "error-text": "$error$"}]
            },
        )
    )
    await gateway.enable("acme-sms")
    provider.state.script(
        "/messages",
        Answer(json={"messages": [{"status": "4", "error-text": "Bad Credentials"}]}),
    )
    error = await _fails(gateway.send())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rpc_details(error)["error_info"]
    assert info.reason == "PROVIDER_REFUSED"
    assert "Bad Credentials" in (error.details() or "")


async def test_outbound_policy_refusal_is_permission_denied(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await start_gateway(outbound_allow=())
    # Registering and enabling never consult the policy; only the provider call does.
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    error = await _fails(gateway.send())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_details(error)["error_info"].reason == "OUTBOUND_POLICY"
    assert provider.state.requests == []


async def test_number_held_by_another_installation_is_already_exists(ready: Gateway) -> None:
    error = await _fails(ready.enable("acme-sms", org="org-2"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    info = rpc_details(error)["error_info"]
    assert info.reason == "NUMBER_TAKEN"
    assert info.metadata["number"] == "+15550001111"


async def test_delete_integration_in_use_is_failed_precondition(ready: Gateway) -> None:
    request = gateway_pb2.DeleteIntegrationRequest(integration_id="acme-sms")
    error = await _fails(ready.stub.DeleteIntegration(request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(error)["error_info"].reason == "INTEGRATION_IN_USE"
    forced = await ready.stub.DeleteIntegration(
        gateway_pb2.DeleteIntegrationRequest(integration_id="acme-sms", force=True)
    )
    assert forced.disabled_installations == 1


async def test_missing_required_property_is_invalid_argument(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    error = await _fails(gateway.enable("acme-sms", properties={"Typo": "x"}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in rpc_details(error)["bad_request"].field_violations}
    assert fields == {"properties[Typo]", "properties[API key]"}


def _request() -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(org_id="org-1", to="+15557654321", text="hi")
    setattr(request, "from", "+15550001111")
    return request
