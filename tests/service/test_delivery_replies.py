"""When a send is replied (docs/delivery.md, "Replies"; issue 16): QUEUE mode at once, a waiting
caller QUEUED when its message's retry comes after its deadline, SENDING when the provider is
still answering at the deadline — never an error — and the outcome then follows as a
MESSAGE_SENT or MESSAGE_FAILED event carrying the caller's metadata."""

from __future__ import annotations

import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ._delivery import (
    fast_gateway,
    message,
    outcome_event,
    queued_send,
    send_within,
    until_state,
)
from .conftest import GatewayFactory

METADATA = {"call": "c-42", "agent": "101"}


async def test_queue_mode_replies_queued_and_the_outcome_follows_as_an_event(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script("/messages", Answer(json={"data": {"id": "P-1"}}, delay_s=0.5))

    reply = await queued_send(gateway, metadata=METADATA, text="queued hello")

    assert reply.message_id and reply.installation_id and reply.integration_id == "acme-sms"
    assert not reply.HasField("provider_message_id") and reply.attempts == 0
    assert (reply.encoding, reply.segments) == ("GSM-7", 1)
    event = await outcome_event(gateway, reply.message_id)
    assert event.type == gateway_pb2.Event.MESSAGE_SENT
    assert dict(event.metadata) == METADATA
    assert (event.provider_message_id, event.status) == ("P-1", "sent")
    assert (getattr(event, "from"), event.to) == ("+15550001111", "+15557654321")
    assert event.installation_id == reply.installation_id
    record = await message(gateway, reply.message_id)
    assert record.state == gateway_pb2.Message.SENT and record.provider_message_id == "P-1"
    assert [r.json["content"] for r in provider.state.requests_to("/messages")] == ["queued hello"]


@pytest.mark.parametrize(
    ("then", "event_type"),
    [
        (Answer(json={"data": {"id": "P-2"}}), gateway_pb2.Event.MESSAGE_SENT),
        (Answer(status=400, json={"error": "bad"}), gateway_pb2.Event.MESSAGE_FAILED),
    ],
)
async def test_a_waiting_send_whose_retry_comes_after_its_deadline_is_replied_queued(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    then: Answer,
    event_type: gateway_pb2.Event.Type.ValueType,
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script("/messages", Answer(status=429, headers=(("Retry-After", "2"),)), then)

    reply = await send_within(gateway, 1.0, metadata=METADATA)

    assert reply.state == gateway_pb2.Message.QUEUED and reply.message_id
    assert len(provider.state.requests_to("/messages")) == 1
    event = await outcome_event(gateway, reply.message_id)
    assert event.type == event_type
    assert dict(event.metadata) == METADATA
    record = await message(gateway, reply.message_id)
    assert [a.provider_status for a in record.attempt_log] == [429, then.status]
    if event_type == gateway_pb2.Event.MESSAGE_FAILED:
        assert record.state == gateway_pb2.Message.FAILED
        assert "PROVIDER" in event.error and event.status == "failed"
    else:
        assert record.state == gateway_pb2.Message.SENT
        assert event.provider_message_id == "P-2"


async def test_a_send_still_at_the_provider_at_the_deadline_is_replied_sending(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url, provider_timeout_s=5.0)
    provider.state.script("/messages", Answer(json={"data": {"id": "P-3"}}, delay_s=2.0))

    reply = await send_within(gateway, 1.0, metadata=METADATA)

    assert reply.state == gateway_pb2.Message.SENDING and reply.message_id
    assert not reply.HasField("provider_message_id")
    event = await outcome_event(gateway, reply.message_id)
    assert event.type == gateway_pb2.Event.MESSAGE_SENT
    assert (event.provider_message_id, dict(event.metadata)) == ("P-3", METADATA)
    record = await until_state(gateway, reply.message_id)
    assert record.state == gateway_pb2.Message.SENT and record.attempts == 1
    assert len(provider.state.requests_to("/messages")) == 1


async def test_a_send_waiting_for_its_rate_is_replied_when_sent_or_queued_at_the_deadline(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    one_a_second = gateway_pb2.SendLimits(per_number=gateway_pb2.Throughput(per_second=1, burst=1))
    gateway = await fast_gateway(start_gateway, provider.url, limits=one_a_second)
    assert (await gateway.send(to="+15557650001")).state == gateway_pb2.Message.SENT

    # The caller waits for its turn, as long as its deadline allows …
    waited = await send_within(gateway, 10.0, to="+15557650002")
    assert waited.state == gateway_pb2.Message.SENT and waited.attempts == 1
    # … and is replied QUEUED when the deadline comes first; the outcome follows.
    short = await send_within(gateway, 0.5, to="+15557650003", metadata=METADATA)
    assert short.state == gateway_pb2.Message.QUEUED and short.attempts == 0
    event = await outcome_event(gateway, short.message_id)
    assert event.type == gateway_pb2.Event.MESSAGE_SENT
    assert dict(event.metadata) == METADATA
    assert [r.json["to"] for r in provider.state.requests_to("/messages")] == [
        "+15557650001",
        "+15557650002",
        "+15557650003",
    ]
