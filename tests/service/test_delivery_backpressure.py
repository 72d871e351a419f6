"""Queue caps and idempotency keys on queued sends over real sockets (docs/delivery.md; issue
16): an installation's `max_queued` refuses one more waiting message with RESOURCE_EXHAUSTED
(QUEUE_FULL) and RetryInfo, a cancelled one makes room again, and a repeat of a key returns the
first send's message — also when the queue is full — never a second message."""

from __future__ import annotations

import asyncio

import grpc

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from ._delivery import Q, fails, fast_gateway, send_at, until_state
from .conftest import GatewayFactory, rpc_details


async def test_a_full_queue_refuses_with_retry_info_until_a_place_is_free(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    # A caller without a deadline would wait 10 minutes: a scheduled send must not wait at all.
    gateway = await fast_gateway(
        start_gateway,
        provider.url,
        limits=gateway_pb2.SendLimits(max_queued=3),
        send_deadline_s=600.0,
    )
    later = send_at(60)
    backlog = [
        await gateway.send(text=f"later {n}", idempotency_key=f"k{n}", options=later)
        for n in range(3)
    ]
    assert {r.state for r in backlog} == {gateway_pb2.Message.QUEUED}

    error = await fails(gateway, text="one more", options=gateway_pb2.SendOptions(mode=Q))

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = rpc_details(error)
    assert details["error_info"].reason == "QUEUE_FULL"
    assert details["error_info"].metadata["installation"] == backlog[0].installation_id
    assert details["retry_info"].retry_delay.ToTimedelta().total_seconds() > 0
    # A repeat of a queued send's key is that send, not one more message.
    async with asyncio.timeout(30):  # only ends a test that hangs
        repeat = await gateway.send(text="later 1", idempotency_key="k1", options=later)
    assert repeat.message_id == backlog[1].message_id and repeat.replayed
    assert repeat.state == gateway_pb2.Message.QUEUED

    await gateway.stub.CancelMessage(
        gateway_pb2.CancelMessageRequest(message_id=backlog[0].message_id)
    )
    reply = await gateway.send(text="one more", options=gateway_pb2.SendOptions(mode=Q))
    assert (await until_state(gateway, reply.message_id)).state == gateway_pb2.Message.SENT
    assert [r.json["content"] for r in provider.state.requests_to("/messages")] == ["one more"]


async def test_a_repeated_key_of_a_queued_send_returns_the_same_message(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    queue = gateway_pb2.SendOptions(mode=Q)

    first = await gateway.send(idempotency_key="once", options=queue)
    again = await gateway.send(idempotency_key="once", options=queue)

    assert first.state == gateway_pb2.Message.QUEUED and not first.replayed
    assert again.message_id == first.message_id and again.replayed
    assert (await until_state(gateway, first.message_id)).state == gateway_pb2.Message.SENT
    after = await gateway.send(idempotency_key="once", options=queue)
    assert after.message_id == first.message_id and after.replayed
    assert after.state == gateway_pb2.Message.SENT and after.provider_message_id
    waited = await gateway.send(idempotency_key="once")  # the same key, waiting: the same reply
    assert waited.message_id == first.message_id and waited.replayed

    listed = await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest())
    assert [m.message_id for m in listed.messages] == [first.message_id]
    assert len(provider.state.requests_to("/messages")) == 1

    error = await fails(gateway, idempotency_key="once", text="other text", options=queue)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
