"""A FAILED message says why in its `error`, reason first (gateway.proto, Message.State FAILED):
a reader of GetMessage or ListMessages — a caller that was replied QUEUED, an operator — must
tell an outcome that cannot be known (OUTCOME_UNKNOWN: the provider may have sent it) from a
failure that sent nothing, as the caller that waited and the MESSAGE_FAILED event can."""

from __future__ import annotations

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider
from tests.reliability._waiting import eventually

from .conftest import Gateway, definition, rpc_details

_QUEUE = gateway_pb2.SendOptions(mode=gateway_pb2.SendOptions.QUEUE)


@pytest.fixture
async def referenced(gateway: Gateway, provider: RunningFakeProvider) -> Gateway:
    parameters = {"from": "$from$", "to": "$to$", "content": "$content$", "ref": "$gateway_id$"}
    await gateway.register(definition(provider.url, parameters=parameters))
    await gateway.enable("acme-sms")
    return gateway


async def _ended(gateway: Gateway, message_id: str) -> gateway_pb2.Message:
    """The message once it left the queue (read by GetMessage, as a QUEUE-mode caller does)."""
    request = gateway_pb2.GetMessageRequest(message_id=message_id)
    waiting = (gateway_pb2.Message.QUEUED, gateway_pb2.Message.SENDING)

    async def ended() -> bool:
        return (await gateway.stub.GetMessage(request)).state not in waiting

    assert await eventually(ended, within_s=30)
    message: gateway_pb2.Message = await gateway.stub.GetMessage(request)
    return message


async def test_a_connection_broken_after_the_request_is_failed_outcome_unknown(
    referenced: Gateway, provider: RunningFakeProvider
) -> None:
    provider.state.script("*", Answer(close=True))
    with pytest.raises(grpc.aio.AioRpcError) as waited:
        await referenced.send()
    assert rpc_details(waited.value)["error_info"].reason == "OUTCOME_UNKNOWN"
    message_id = provider.state.requests[-1].json["ref"]
    message = await _ended(referenced, message_id)
    assert message.state == gateway_pb2.Message.FAILED
    assert message.error.startswith("OUTCOME_UNKNOWN: the provider may have sent the message")
    # The attempt keeps what happened to the call itself.
    assert [a.reason for a in message.attempt_log] == ["PROVIDER_UNAVAILABLE"]


async def test_a_queued_send_the_provider_refuses_says_its_reason(
    referenced: Gateway, provider: RunningFakeProvider
) -> None:
    provider.state.script("*", Answer(status=400, json={"error": "bad number"}))
    reply = await referenced.send(options=_QUEUE)
    assert reply.state == gateway_pb2.Message.QUEUED
    message = await _ended(referenced, reply.message_id)
    assert message.state == gateway_pb2.Message.FAILED
    assert message.error.startswith("PROVIDER_REJECTED: ")
    assert "OUTCOME_UNKNOWN" not in message.error
