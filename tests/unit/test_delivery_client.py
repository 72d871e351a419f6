"""The typed client's side of the delivery pipeline (issue 16): the dataclasses' conversions, and
send options, limits, ListMessages and CancelMessage over a real grpc.aio server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Callable

import pytest
from _delivery_gateway import MESSAGES, DeliveryGateway, serving

from client import (
    AsyncClient,
    Client,
    ClientOptions,
    FailedPreconditionError,
    Number,
    RateUnit,
    SendLimits,
    SendMode,
    SendOptions,
    Throughput,
)
from msgbridge.v1 import gateway_pb2

TOKYO = datetime.timezone(datetime.timedelta(hours=9))
AT = datetime.datetime(2026, 12, 7, 9, 30, tzinfo=TOKYO)  # 00:30 UTC


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[DeliveryGateway, str]]:
    servicer = DeliveryGateway()
    async with serving(servicer) as target:
        yield servicer, target


# -- conversions --------------------------------------------------------------------------------


def test_send_options_become_the_proto_with_send_at_in_utc() -> None:
    options = SendOptions(mode=SendMode.QUEUE, send_at=AT, unordered=True).to_proto()

    assert options.mode == gateway_pb2.SendOptions.QUEUE
    assert options.unordered is True
    assert options.send_at.ToDatetime(tzinfo=datetime.UTC) == datetime.datetime(
        2026, 12, 7, 0, 30, tzinfo=datetime.UTC
    )


def test_default_send_options_are_wait_and_unscheduled() -> None:
    options = SendOptions().to_proto()

    assert options.mode == gateway_pb2.SendOptions.WAIT
    assert not options.HasField("send_at")


def test_a_naive_send_time_is_refused_when_the_options_are_made() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        SendOptions(send_at=datetime.datetime(2026, 12, 7, 9, 30))  # naive on purpose


def test_send_limits_round_trip_through_the_proto() -> None:
    limits = SendLimits(
        per_number=Throughput(per_second=1.5),
        per_installation=Throughput(per_second=50, unit=RateUnit.SEGMENTS, burst=10),
        max_queued=1000,
        max_segments=4,
    )

    proto = limits.to_proto()

    assert proto.per_number.per_second == 1.5
    assert proto.per_number.unit == gateway_pb2.Throughput.MESSAGES
    assert proto.per_installation.unit == gateway_pb2.Throughput.SEGMENTS
    assert proto.per_installation.burst == 10
    assert SendLimits.from_proto(proto) == limits


def test_unset_limits_stay_unset_so_the_definition_s_defaults_apply() -> None:
    proto = SendLimits(max_queued=5).to_proto()

    assert not proto.HasField("per_number") and not proto.HasField("per_installation")
    assert SendLimits.from_proto(proto) == SendLimits(max_queued=5)


def test_an_unspecified_unit_reads_back_as_messages() -> None:
    throughput = Throughput.from_proto(gateway_pb2.Throughput(per_second=3))

    assert throughput == Throughput(per_second=3, unit=RateUnit.MESSAGES)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Throughput(per_second=-1),
        lambda: Throughput(per_second=float("nan")),
        lambda: Throughput(per_second=float("inf")),
        lambda: Throughput(per_second=1, burst=-1),
        lambda: Throughput(per_second=1, burst=2**31),
        lambda: SendLimits(max_queued=-1),
        lambda: SendLimits(max_segments=2**31),
    ],
)
def test_values_out_of_the_fields_range_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()


def test_a_number_carries_its_own_throughput() -> None:
    assignment = Number(
        number="+18005550100", users=("101",), throughput=Throughput(per_second=3)
    ).to_proto()

    assert (assignment.number, list(assignment.users)) == ("+18005550100", ["101"])
    assert assignment.throughput.per_second == 3
    assert not Number(number="+15550001111").to_proto().HasField("throughput")


# -- over the wire ------------------------------------------------------------------------------


async def test_async_send_message_carries_the_options_and_returns_state_and_segments(
    gateway: tuple[DeliveryGateway, str],
) -> None:
    servicer, target = gateway
    async with await AsyncClient.connect(target, options=ClientOptions(timeout=10)) as client:
        reply = await client.send_message(
            org_id="acme",
            from_="+15550001111",
            to="+15550002222",
            text="hello",
            options=SendOptions(mode=SendMode.QUEUE, unordered=True),
        )
        plain = await client.send_message(
            org_id="acme", from_="+15550001111", to="+15550002222", text="hello"
        )

    assert reply.state == gateway_pb2.Message.QUEUED
    assert (reply.encoding, reply.segments) == ("GSM-7", 1)
    assert plain.state == gateway_pb2.Message.SENT
    queued, waited = servicer.requests("SendMessage")
    assert queued.options.mode == gateway_pb2.SendOptions.QUEUE and queued.options.unordered
    assert not waited.HasField("options")  # no options: the request an older server knows


async def test_sync_send_file_schedules_with_send_at(gateway: tuple[DeliveryGateway, str]) -> None:
    servicer, target = gateway

    def send() -> gateway_pb2.SendReply:
        with Client.connect(target, options=ClientOptions(timeout=10)) as client:
            return client.send_file(
                org_id="acme",
                from_="+15550001111",
                to="+15550002222",
                media_url="https://files.example/a.png",
                options=SendOptions(send_at=AT),
            )

    reply = await asyncio.to_thread(send)

    assert reply.state == gateway_pb2.Message.QUEUED
    assert reply.segments == 0  # a file without a caption
    (request,) = servicer.requests("SendFile")
    assert request.options.send_at.ToDatetime(tzinfo=datetime.UTC) == AT


async def test_async_list_messages_follows_the_pages_with_the_same_filters(
    gateway: tuple[DeliveryGateway, str],
) -> None:
    servicer, target = gateway
    since = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    async with await AsyncClient.connect(target, options=ClientOptions(timeout=10)) as client:
        listed = [
            m.message_id
            async for m in client.list_messages(
                org_id="acme",
                installation_id="inst-1",
                states=[gateway_pb2.Message.QUEUED, gateway_pb2.Message.FAILED],
                created_after=since,
                page_size=2,
            )
        ]

    assert listed == [m.message_id for m in MESSAGES]
    first, second = servicer.requests("ListMessages")
    assert (first.page_token, second.page_token) == ("", "p2")
    for request in (first, second):
        assert (request.org_id, request.installation_id, request.page_size) == ("acme", "inst-1", 2)
        assert list(request.states) == [gateway_pb2.Message.QUEUED, gateway_pb2.Message.FAILED]
        assert request.created_after.ToDatetime(tzinfo=datetime.UTC) == since
        assert not request.HasField("created_before")


async def test_list_messages_refuses_a_naive_bound_before_calling(
    gateway: tuple[DeliveryGateway, str],
) -> None:
    servicer, target = gateway
    naive = datetime.datetime(2026, 12, 1)  # naive on purpose
    async with await AsyncClient.connect(target, options=ClientOptions(timeout=10)) as client:
        with pytest.raises(ValueError, match="created_before must be an aware datetime"):
            async for _ in client.list_messages(created_before=naive):
                pass

    assert servicer.received == []


async def test_sync_cancel_message_returns_the_cancelled_message_or_its_error(
    gateway: tuple[DeliveryGateway, str],
) -> None:
    servicer, target = gateway

    def cancel() -> tuple[gateway_pb2.Message, FailedPreconditionError]:
        with Client.connect(target, options=ClientOptions(timeout=10)) as client:
            cancelled = client.cancel_message("msg-3")
            with pytest.raises(FailedPreconditionError) as refused:
                client.cancel_message("msg-sent")
            return cancelled, refused.value

    cancelled, error = await asyncio.to_thread(cancel)

    assert cancelled.state == gateway_pb2.Message.CANCELLED
    assert error.error_info is not None and error.error_info.reason == "MESSAGE_NOT_CANCELLABLE"
    assert [r.message_id for r in servicer.requests("CancelMessage")] == ["msg-3", "msg-sent"]


async def test_enable_and_update_carry_limits_and_per_number_throughput(
    gateway: tuple[DeliveryGateway, str],
) -> None:
    servicer, target = gateway
    limits = SendLimits(per_installation=Throughput(per_second=50), max_queued=10)
    async with await AsyncClient.connect(target, options=ClientOptions(timeout=10)) as client:
        installation = await client.enable_integration(
            org_id="acme",
            integration_id="acme",
            properties={},
            numbers=[
                Number(number="+18005550100", throughput=Throughput(per_second=3)),
                gateway_pb2.NumberAssignment(number="+15550001111", users=["101"]),
            ],
            send_limits=limits,
        )
        await client.update_installation("inst-1", send_limits=SendLimits())
        await client.update_installation("inst-1", default_region="US")

    assert SendLimits.from_proto(installation.send_limits) == limits
    (enable,) = servicer.requests("EnableIntegration")
    assert [n.throughput.per_second for n in enable.numbers] == [3, 0]
    assert not enable.numbers[1].HasField("throughput")
    cleared, untouched = servicer.requests("UpdateInstallation")
    assert cleared.HasField("send_limits")  # set and empty: every limit back to the default
    assert cleared.send_limits == gateway_pb2.SendLimits()
    assert not untouched.HasField("send_limits")
