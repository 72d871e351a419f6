"""Order and fairness over real sockets (docs/delivery.md; issue 16): messages of one
conversation (sender, recipient) leave in the order they were accepted — a retry of the first
holds the second back — unless the second is `unordered`; and one installation's throttled
backlog does not keep another installation's message waiting. Asserted by what the fake provider
received, in order, never by time."""

from __future__ import annotations

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ._delivery import (
    Q,
    enable,
    fast_gateway,
    queued_send,
    received_texts,
    until_state,
)
from .conftest import Gateway, GatewayFactory

QUEUED = gateway_pb2.Message.QUEUED
SENT = gateway_pb2.Message.SENT


async def _first_waits_for_its_retry(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> tuple[Gateway, str]:
    """A gateway whose first message was answered 503 with `Retry-After: 1` and waits, QUEUED,
    for its retry (every later answer is a 200)."""
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script(
        "/messages", Answer(status=503, headers=(("Retry-After", "1"),)), Answer()
    )
    first = await queued_send(gateway, text="first")
    await until_state(gateway, first.message_id, [QUEUED], attempts=1)
    return gateway, first.message_id


async def test_a_retry_of_the_first_message_holds_the_second_back(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway, first = await _first_waits_for_its_retry(start_gateway, provider)

    second = await queued_send(gateway, text="second")

    assert (await until_state(gateway, second.message_id)).state == SENT
    assert (await until_state(gateway, first)).state == SENT
    assert received_texts(provider) == ["first", "first", "second"]


async def test_an_unordered_message_may_leave_before_an_earlier_one(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway, first = await _first_waits_for_its_retry(start_gateway, provider)

    second = await gateway.send(
        text="second", options=gateway_pb2.SendOptions(mode=Q, unordered=True)
    )

    assert (await until_state(gateway, second.message_id)).state == SENT
    assert (await until_state(gateway, first)).state == SENT
    assert received_texts(provider) == ["first", "second", "first"]


async def test_another_recipient_is_not_held_back(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway, first = await _first_waits_for_its_retry(start_gateway, provider)

    other = await queued_send(gateway, text="other", to="+15557650000")

    assert (await until_state(gateway, other.message_id)).state == SENT
    assert (await until_state(gateway, first)).state == SENT
    assert received_texts(provider) == ["first", "other", "first"]


async def test_a_throttled_backlog_does_not_keep_another_installation_waiting(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    two_a_second = gateway_pb2.SendLimits(
        per_installation=gateway_pb2.Throughput(per_second=2, burst=1)
    )
    gateway = await fast_gateway(start_gateway, provider.url, limits=two_a_second)  # org-1
    await enable(gateway, org="org-b", number="+15550002222")  # no limits
    backlog = [await queued_send(gateway, text=f"a{n}", to=f"+1555765{n:04d}") for n in range(20)]

    b = await gateway.send(
        org="org-b",
        text="b",
        options=gateway_pb2.SendOptions(mode=Q),
        **{"from": "+15550002222"},
    )

    assert (await until_state(gateway, b.message_id)).state == SENT
    received = received_texts(provider)
    before_b = received[: received.index("b")]
    assert len(before_b) < len(backlog)
    assert set(before_b) <= {f"a{n}" for n in range(20)}
