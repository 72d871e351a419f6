"""Scheduled sends and CancelMessage over real sockets (docs/delivery.md; issue 16): a message
with `send_at` is replied QUEUED at once and reaches the provider only at its time; a queued one
can be cancelled and then never reaches the provider; a sent one cannot be cancelled."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ._delivery import (
    Q,
    fast_gateway,
    message,
    received_texts,
    send_at,
    send_within,
    until_state,
)
from .conftest import GatewayFactory, rpc_details

QUEUED = gateway_pb2.Message.QUEUED


async def test_a_scheduled_message_is_sent_at_its_time_not_before(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    options = send_at(1.5)

    reply = await gateway.send(text="later", options=options)

    assert reply.state == QUEUED and reply.attempts == 0
    assert provider.state.requests_to("/messages") == []
    waiting = await message(gateway, reply.message_id)
    assert waiting.state == QUEUED and waiting.send_at == options.send_at
    assert waiting.next_attempt_at == options.send_at

    sent = await until_state(gateway, reply.message_id)
    assert sent.state == gateway_pb2.Message.SENT
    assert received_texts(provider) == ["later"]
    (attempt,) = sent.attempt_log
    assert attempt.started_at.ToDatetime() >= options.send_at.ToDatetime()


async def test_a_cancelled_message_never_reaches_the_provider(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    scheduled = await gateway.send(text="cancelled", options=send_at(1.0))
    # Sent after the cancelled one's time: had that one left, the provider would have it first.
    marker = await gateway.send(text="marker", options=send_at(1.5))

    cancelled = await gateway.stub.CancelMessage(
        gateway_pb2.CancelMessageRequest(message_id=scheduled.message_id)
    )

    assert cancelled.state == gateway_pb2.Message.CANCELLED
    assert cancelled.message_id == scheduled.message_id
    assert (await until_state(gateway, marker.message_id)).state == gateway_pb2.Message.SENT
    assert received_texts(provider) == ["marker"]
    record = await message(gateway, scheduled.message_id)
    assert record.state == gateway_pb2.Message.CANCELLED and list(record.attempt_log) == []

    # Cancelled is final: cancelling it again is refused like any message not queued.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.CancelMessage(
            gateway_pb2.CancelMessageRequest(message_id=scheduled.message_id)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(caught.value)["error_info"].reason == "MESSAGE_NOT_CANCELLABLE"


async def test_a_sent_message_cannot_be_cancelled(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    reply = await gateway.send()
    assert reply.state == gateway_pb2.Message.SENT

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.CancelMessage(
            gateway_pb2.CancelMessageRequest(message_id=reply.message_id)
        )

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rpc_details(caught.value)["error_info"]
    assert info.reason == "MESSAGE_NOT_CANCELLABLE"
    assert info.metadata["state"] == "sent"
    assert (await message(gateway, reply.message_id)).state == gateway_pb2.Message.SENT

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.CancelMessage(gateway_pb2.CancelMessageRequest(message_id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_scheduled_message_does_not_hold_back_a_later_accepted_one(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    # A scheduled message's place in its conversation is its send time (docs/delivery.md).
    gateway = await fast_gateway(start_gateway, provider.url, send_deadline_s=600.0)
    scheduled = await gateway.send(text="tomorrow", options=send_at(24 * 3600))

    now = await gateway.send(text="now")

    assert now.state == gateway_pb2.Message.SENT
    assert received_texts(provider) == ["now"]
    assert (await message(gateway, scheduled.message_id)).state == QUEUED


async def test_a_message_waiting_for_its_retry_can_be_cancelled(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script(
        "/messages", Answer(status=503, headers=(("Retry-After", "1"),)), Answer()
    )
    first = await gateway.send(text="first", options=gateway_pb2.SendOptions(mode=Q))
    await until_state(gateway, first.message_id, [QUEUED], attempts=1)

    cancelled = await gateway.stub.CancelMessage(
        gateway_pb2.CancelMessageRequest(message_id=first.message_id)
    )

    assert cancelled.state == gateway_pb2.Message.CANCELLED
    assert [a.provider_status for a in cancelled.attempt_log] == [503]
    # The next message of the conversation is no longer held back, and the cancelled one never
    # leaves again.
    second = await gateway.send(text="second")
    assert second.state == gateway_pb2.Message.SENT
    marker = await gateway.send(text="marker", options=send_at(1.5))
    assert (await until_state(gateway, marker.message_id)).state == gateway_pb2.Message.SENT
    assert received_texts(provider) == ["first", "second", "marker"]
    assert (await message(gateway, first.message_id)).state == gateway_pb2.Message.CANCELLED


async def test_a_caller_waiting_for_a_message_that_is_cancelled_is_told_so(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script(
        "/messages", Answer(status=503, headers=(("Retry-After", "2"),)), Answer()
    )
    # Its retry comes well before its deadline: the caller keeps waiting.
    waiting = asyncio.ensure_future(send_within(gateway, 10.0))
    await provider.state.wait_for_requests(1, path="/messages")
    message_id = provider.state.requests_to("/messages")[0].json["ref"]
    await until_state(gateway, message_id, [QUEUED], attempts=1)

    await gateway.stub.CancelMessage(gateway_pb2.CancelMessageRequest(message_id=message_id))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await waiting
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(caught.value)["error_info"].reason == "MESSAGE_CANCELLED"
    assert (await message(gateway, message_id)).state == gateway_pb2.Message.CANCELLED
    assert len(provider.state.requests_to("/messages")) == 1
