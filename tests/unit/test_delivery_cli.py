"""The CLI for the delivery pipeline (issue 16) — ``send --queue/--at/--unordered``, ``messages``,
``cancel`` and the limit options of ``enable`` and ``update-installation`` — run through
``client.cli.main`` against a servicer of only those RPCs on a real grpc.aio server (127.0.0.1,
port 0): what the server received and what the command printed."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator

import pytest
from _delivery_gateway import DeliveryGateway, serving

from client.cli import main
from msgbridge.v1 import gateway_pb2

SEND = ["send", "--org", "acme", "--from", "+15550001111", "--to", "+15550002222"]


class Cli:
    """``await cli("send", …)``: main() in a thread (its sync channel must not block the loop the
    server runs on), with --target pointing at the servicer; returns (exit code, out, err)."""

    def __init__(self, target: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.target = target
        self.capsys = capsys

    async def __call__(self, *arguments: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*arguments, "--target", self.target])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
async def servicer() -> DeliveryGateway:
    return DeliveryGateway()


@pytest.fixture
async def cli(
    servicer: DeliveryGateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Cli]:
    monkeypatch.delenv("MSGBRIDGE_TARGET", raising=False)
    monkeypatch.delenv("MSGBRIDGE_TOKEN", raising=False)
    async with serving(servicer) as target:
        yield Cli(target, capsys)


# -- send -----------------------------------------------------------------------------------------


async def test_send_queue_replies_queued_at_once(cli: Cli, servicer: DeliveryGateway) -> None:
    code, out, err = await cli(*SEND, "--text", "hello", "--queue")

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Queued msg-9 through acme (installation inst-1): the outcome follows as an event; "
        "GSM-7, 1 segment"
    ]
    (request,) = servicer.requests("SendMessage")
    assert request.options.mode == gateway_pb2.SendOptions.QUEUE
    assert not request.options.HasField("send_at") and not request.options.unordered


async def test_send_at_an_iso_time_sends_it_as_utc(cli: Cli, servicer: DeliveryGateway) -> None:
    code, out, _ = await cli(
        *SEND, "--text", "later", "--at", "2026-12-07T09:30:00+09:00", "--unordered", "--json"
    )

    assert code == 0
    reply = json.loads(out)
    assert (reply["state"], reply["encoding"], reply["segments"]) == ("QUEUED", "GSM-7", 1)
    (request,) = servicer.requests("SendMessage")
    assert request.options.mode == gateway_pb2.SendOptions.WAIT  # a send time alone: queued
    assert request.options.unordered is True
    assert request.options.send_at.ToDatetime(tzinfo=datetime.UTC) == datetime.datetime(
        2026, 12, 7, 0, 30, tzinfo=datetime.UTC
    )


async def test_send_file_at_a_relative_time_is_scheduled_from_now(
    cli: Cli, servicer: DeliveryGateway
) -> None:
    before = datetime.datetime.now(datetime.UTC)
    code, out, _ = await cli(
        "send-file", *SEND[1:], "--url", "https://files.example/a.png", "--at", "+10m"
    )
    after = datetime.datetime.now(datetime.UTC)

    assert code == 0
    assert out.startswith("Queued msg-9 through acme")
    (request,) = servicer.requests("SendFile")
    send_at = request.options.send_at.ToDatetime(tzinfo=datetime.UTC)
    ten_minutes = datetime.timedelta(minutes=10)
    # Within the span the command ran in (protobuf keeps microseconds).
    assert before + ten_minutes <= send_at <= after + ten_minutes


async def test_a_plain_send_shows_sent_with_encoding_and_sets_no_options(
    cli: Cli, servicer: DeliveryGateway
) -> None:
    code, out, _ = await cli(*SEND, "--text", "now")

    assert code == 0
    assert out.splitlines() == [
        "Sent msg-9 through acme (installation inst-1): provider id SM9, HTTP 201, 1 attempt; "
        "GSM-7, 1 segment"
    ]
    (request,) = servicer.requests("SendMessage")
    assert not request.HasField("options")


async def test_a_naive_send_time_never_reaches_the_server(
    cli: Cli, servicer: DeliveryGateway
) -> None:
    with pytest.raises(SystemExit) as caught:
        await cli(*SEND, "--text", "x", "--at", "2026-12-07T09:30:00")

    assert caught.value.code == 2
    assert servicer.received == []


# -- messages and cancel ------------------------------------------------------------------------


async def test_messages_lists_every_page_as_a_table(cli: Cli, servicer: DeliveryGateway) -> None:
    code, out, err = await cli(
        "messages",
        "--org",
        "acme",
        "--installation",
        "inst-1",
        "--state",
        "queued,failed",
        "--state",
        "sent",
        "--since",
        "2026-12-01T00:00:00Z",
        "--until",
        "2026-12-02T00:00:00+01:00",
        "--page-size",
        "2",
    )

    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID",
        "STATE",
        "CREATED",
        "ORG",
        "FROM",
        "TO",
        "SEGMENTS",
        "NEXT",
        "ERROR",
    ]
    assert [row.split()[:2] for row in rows] == [
        ["msg-3", "queued"],
        ["msg-2", "failed"],
        ["msg-1", "sent"],
    ]
    assert "2026-09-21T14:23:20+00:00" in rows[0]  # msg-3's next attempt (its send time)
    assert rows[1].endswith("PROVIDER_REJECTED: bad number")
    first, second = servicer.requests("ListMessages")
    assert second.page_token == "p2"
    assert (first.org_id, first.installation_id, first.page_size) == ("acme", "inst-1", 2)
    assert list(first.states) == [
        gateway_pb2.Message.QUEUED,
        gateway_pb2.Message.FAILED,
        gateway_pb2.Message.SENT,
    ]
    assert first.created_after.ToDatetime(tzinfo=datetime.UTC) == datetime.datetime(
        2026, 12, 1, tzinfo=datetime.UTC
    )
    assert first.created_before.ToDatetime(tzinfo=datetime.UTC) == datetime.datetime(
        2026, 12, 1, 23, tzinfo=datetime.UTC
    )


async def test_messages_as_json_lines_without_filters(cli: Cli, servicer: DeliveryGateway) -> None:
    code, out, _ = await cli("messages", "--json")

    assert code == 0
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(m["messageId"], m["state"]) for m in listed] == [
        ("msg-3", "QUEUED"),
        ("msg-2", "FAILED"),
        ("msg-1", "SENT"),
    ]
    assert listed[0]["sendAt"] == "2026-09-21T14:23:20Z"
    request = servicer.requests("ListMessages")[0]
    assert list(request.states) == [] and not request.HasField("created_after")


async def test_messages_refuses_since_after_until(cli: Cli, servicer: DeliveryGateway) -> None:
    code, _, err = await cli(
        "messages", "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"
    )

    assert code == 2
    assert "--since must be before --until" in err
    assert servicer.received == []


async def test_cancel_prints_the_cancelled_message(cli: Cli, servicer: DeliveryGateway) -> None:
    code, out, err = await cli("cancel", "msg-3")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Cancelled msg-3"
    assert "state:         cancelled" in lines
    assert "encoding:      GSM-7, 1 segment" in lines
    assert "send at:       2026-09-21T14:23:20+00:00" in lines
    assert [r.message_id for r in servicer.requests("CancelMessage")] == ["msg-3"]


async def test_cancel_of_a_sent_message_reports_why(cli: Cli) -> None:
    code, out, err = await cli("cancel", "msg-sent")

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "FAILED_PRECONDITION: MESSAGE_NOT_CANCELLABLE: "
        "message msg-sent is SENT: only a queued message can be cancelled"
    ]


# -- limits on enable and update-installation ---------------------------------------------------


async def test_enable_with_limits_and_a_number_s_own_rate(
    cli: Cli, servicer: DeliveryGateway
) -> None:
    code, out, err = await cli(
        "enable",
        "--org",
        "acme",
        "--integration",
        "acme",
        "--number",
        "+18005550100@3/s=101,102",
        "--number",
        "+15550001111",
        "--rate-per-number",
        "1/s",
        "--rate-per-installation",
        "3000/min",
        "--rate-unit",
        "segments",
        "--burst",
        "5",
        "--max-queued",
        "1000",
        "--max-segments",
        "4",
    )

    assert (code, err) == (0, "")
    (request,) = servicer.requests("EnableIntegration")
    segments = gateway_pb2.Throughput.SEGMENTS
    assert request.send_limits == gateway_pb2.SendLimits(
        per_number=gateway_pb2.Throughput(per_second=1, unit=segments, burst=5),
        per_installation=gateway_pb2.Throughput(per_second=50, unit=segments, burst=5),
        max_queued=1000,
        max_segments=4,
    )
    rated, plain = request.numbers
    assert (rated.number, list(rated.users)) == ("+18005550100", ["101", "102"])
    assert rated.throughput == gateway_pb2.Throughput(per_second=3, unit=segments, burst=5)
    assert not plain.HasField("throughput")
    lines = out.splitlines()
    assert (
        "send limits:   per number 1 segments/s, burst 5; per installation 50 segments/s, "
        "burst 5; max queued 1000; max segments 4"
    ) in lines
    assert "  +18005550100 (3 segments/s, burst 5) → 101, 102" in lines


async def test_enable_without_limits_leaves_them_unset(cli: Cli, servicer: DeliveryGateway) -> None:
    code, out, _ = await cli("enable", "--org", "acme", "--integration", "acme")

    assert code == 0
    (request,) = servicer.requests("EnableIntegration")
    assert not request.HasField("send_limits")
    assert not any(line.startswith("send limits") for line in out.splitlines())


async def test_a_burst_without_a_rate_is_a_usage_error(cli: Cli, servicer: DeliveryGateway) -> None:
    code, _, err = await cli("enable", "--org", "acme", "--integration", "acme", "--burst", "5")

    assert code == 2
    assert "--rate-unit and --burst qualify a rate" in err
    assert servicer.received == []


async def test_update_changes_only_the_limits_it_names(cli: Cli, servicer: DeliveryGateway) -> None:
    code, _, err = await cli("update-installation", "inst-1", "--max-queued", "50")

    assert (code, err) == (0, "")
    # UpdateInstallation replaces the limits whole: the current ones are read first.
    assert [method for method, _ in servicer.received] == ["GetInstallation", "UpdateInstallation"]
    (request,) = servicer.requests("UpdateInstallation")
    assert request.send_limits == gateway_pb2.SendLimits(
        per_number=gateway_pb2.Throughput(per_second=1, unit=gateway_pb2.Throughput.MESSAGES),
        max_queued=50,
        max_segments=4,
    )
    assert request.set_numbers is False


async def test_update_no_limits_sets_them_empty(cli: Cli, servicer: DeliveryGateway) -> None:
    code, _, _ = await cli("update-installation", "inst-1", "--no-limits")
    both, _, both_err = await cli(
        "update-installation", "inst-1", "--no-limits", "--max-segments", "2"
    )

    assert (code, both) == (0, 2)
    assert "exclude each other" in both_err
    (request,) = servicer.requests("UpdateInstallation")
    assert request.HasField("send_limits") and request.send_limits == gateway_pb2.SendLimits()
    assert servicer.requests("GetInstallation") == []


async def test_update_numbers_alone_leaves_the_limits(cli: Cli, servicer: DeliveryGateway) -> None:
    code, _, _ = await cli("update-installation", "inst-1", "--number", "+18005550100@2.5")

    assert code == 0
    (request,) = servicer.requests("UpdateInstallation")
    assert not request.HasField("send_limits")
    assert request.set_numbers is True
    assert request.numbers[0].throughput == gateway_pb2.Throughput(
        per_second=2.5, unit=gateway_pb2.Throughput.MESSAGES
    )
