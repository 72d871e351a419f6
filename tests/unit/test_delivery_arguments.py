"""The CLI's words for the delivery pipeline (issue 16): times, durations, rates, states and
numbers with a rate, parsed without a server; and their usage errors through ``msgbridge``."""

from __future__ import annotations

import argparse
import datetime

import pytest

from client._delivery import RateUnit, SendLimits, SendMode, Throughput
from client._delivery_arguments import (
    check_rate_options,
    number_with_rate,
    parse_duration,
    parse_past_time,
    parse_rate,
    parse_send_time,
    parse_states,
    send_limits,
    send_options,
    with_number_rates,
)
from client.cli import main
from msgbridge.v1 import gateway_pb2

NOW = datetime.datetime(2026, 12, 6, 15, 0, tzinfo=datetime.UTC)


# -- times --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-06T17:30:00+01:00", datetime.datetime(2026, 12, 6, 16, 30, tzinfo=datetime.UTC)),
        ("2026-12-06T16:30:00Z", datetime.datetime(2026, 12, 6, 16, 30, tzinfo=datetime.UTC)),
        ("2026-12-06 16:30+00:00", datetime.datetime(2026, 12, 6, 16, 30, tzinfo=datetime.UTC)),
        ("+10m", NOW + datetime.timedelta(minutes=10)),
        ("+2h", NOW + datetime.timedelta(hours=2)),
        ("+30s", NOW + datetime.timedelta(seconds=30)),
        ("+1d", NOW + datetime.timedelta(days=1)),
        ("+1h30m", NOW + datetime.timedelta(minutes=90)),
        ("10m", NOW + datetime.timedelta(minutes=10)),
    ],
)
def test_send_times(text: str, expected: datetime.datetime) -> None:
    moment = parse_send_time(text, now=NOW)

    assert moment == expected
    assert moment.utcoffset() is not None


@pytest.mark.parametrize(
    "naive", ["2026-12-06T16:30:00", "2026-12-06 16:30", "2026-12-06", "2026-12-06T16:30:00.5"]
)
def test_a_time_without_an_offset_is_refused_with_how_to_give_one(naive: str) -> None:
    with pytest.raises(ValueError, match="has no time zone: add an offset") as refused:
        parse_send_time(naive, now=NOW)

    assert f"{naive}+01:00" in str(refused.value) and "+10m" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tomorrow", "not a time"),
        ("-10m", "in the past"),
        ("+10", "not a time"),
        ("+10x", "not a time"),
        ("+", "not a time"),
        ("+m", "a duration is like"),
        ("+30m1h", "a duration is like"),
        ("+9999999999s", "a duration is like"),
        ("+99999d", "at most 3660 days"),
    ],
)
def test_bad_send_times(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_send_time(text, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - datetime.timedelta(hours=2)),
        ("-2h", NOW - datetime.timedelta(hours=2)),
        ("2026-12-01T00:00:00-05:00", datetime.datetime(2026, 12, 1, 5, tzinfo=datetime.UTC)),
    ],
)
def test_listing_bounds_are_durations_ago(text: str, expected: datetime.datetime) -> None:
    assert parse_past_time(text, now=NOW) == expected


def test_a_listing_bound_in_the_future_or_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="in the future"):
        parse_past_time("+2h", now=NOW)
    with pytest.raises(ValueError, match="no time zone"):
        parse_past_time("2026-12-01", now=NOW)


def test_durations_add_their_parts() -> None:
    assert parse_duration("1d2h3m4s") == datetime.timedelta(days=1, hours=2, minutes=3, seconds=4)
    with pytest.raises(ValueError, match="a duration is like"):
        parse_duration("")


# -- rates, states and numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("3", 3.0),
        ("3/s", 3.0),
        ("0.5/s", 0.5),
        ("75/min", 1.25),
        ("3600/h", 1.0),
        ("0", 0.0),
    ],
)
def test_rates_are_per_second(text: str, per_second: float) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "a rate is N"),
        ("3/day", "period is /s, /min or /h"),
        ("-1", "finite number ≥ 0"),
        ("nan", "finite number ≥ 0"),
        ("inf/s", "finite number ≥ 0"),
    ],
)
def test_bad_rates(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rate(text)


def test_states_are_comma_separated_names() -> None:
    assert parse_states("queued, SENT,cancelled") == [
        gateway_pb2.Message.QUEUED,
        gateway_pb2.Message.SENT,
        gateway_pb2.Message.CANCELLED,
    ]
    with pytest.raises(ValueError, match=r"unknown message state 'lost'.*one of pending, sent"):
        parse_states("queued,lost")


def test_a_number_may_carry_a_rate_before_its_users() -> None:
    plain = number_with_rate("+15550001111=101, 102")
    rated = number_with_rate("+18005550100@3/s=101")
    alone = number_with_rate(" SHOP@0.5 ")

    assert (plain.number, list(plain.users), plain.HasField("throughput")) == (
        "+15550001111",
        ["101", "102"],
        False,
    )
    assert (rated.number, list(rated.users), rated.throughput.per_second) == (
        "+18005550100",
        ["101"],
        3.0,
    )
    assert (alone.number, alone.throughput.per_second) == ("SHOP", 0.5)
    with pytest.raises(ValueError, match="a rate is N"):
        number_with_rate("+18005550100@fast")
    with pytest.raises(ValueError, match=r"NUMBER\[@RATE\]"):
        number_with_rate("@3=101")


# -- from parsed arguments ----------------------------------------------------------------------


def _limits_args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "rate_per_number": None,
        "rate_per_installation": None,
        "rate_unit": None,
        "burst": None,
        "max_queued": None,
        "max_segments": None,
    }
    values.update(given)
    return argparse.Namespace(**values)


def test_limits_from_the_command_line_keep_what_it_does_not_name() -> None:
    current = SendLimits(per_number=Throughput(per_second=1), max_queued=100, max_segments=4)
    args = _limits_args(rate_per_installation=50.0, rate_unit="segments", burst=5, max_queued=10)

    limits = send_limits(args, current)

    assert limits == SendLimits(
        per_number=Throughput(per_second=1),
        per_installation=Throughput(per_second=50, unit=RateUnit.SEGMENTS, burst=5),
        max_queued=10,
        max_segments=4,
    )


def test_unit_and_burst_qualify_the_rates_of_numbers_too() -> None:
    args = _limits_args(rate_unit="segments", burst=2)
    numbers = [number_with_rate("+18005550100@3"), number_with_rate("+15550001111=101")]

    rated, plain = with_number_rates(args, numbers)

    assert (rated.throughput.per_second, rated.throughput.unit, rated.throughput.burst) == (
        3.0,
        gateway_pb2.Throughput.SEGMENTS,
        2,
    )
    assert not plain.HasField("throughput")
    assert not numbers[0].throughput.unit  # the parsed numbers are left as they were


def test_unit_or_burst_without_a_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="--rate-unit and --burst qualify a rate"):
        check_rate_options(_limits_args(burst=3), [number_with_rate("+15550001111")])


def test_send_options_only_when_asked() -> None:
    none = argparse.Namespace(queue=False, at=None, unordered=False)
    queued = argparse.Namespace(queue=True, at=None, unordered=False)
    scheduled = argparse.Namespace(queue=False, at=NOW, unordered=True)

    assert send_options(none) is None
    options = send_options(queued)
    assert options is not None and options.mode is SendMode.QUEUE
    options = send_options(scheduled)
    assert options is not None
    assert (options.mode, options.send_at, options.unordered) == (SendMode.WAIT, NOW, True)


# -- usage errors through the command line -------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--at", "2026-12-06T16:30:00"], "has no time zone: add an offset"),
        (["--at=-5m"], "in the past"),
    ],
)
def test_send_refuses_bad_times_before_connecting(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["send", "--org", "a", "--from", "+1", "--to", "+2", "--text", "x", *arguments]
    # Port 9 on 127.0.0.1 (discard) is never called: the usage error comes first.
    with pytest.raises(SystemExit) as caught:
        main([*command, "--target", "127.0.0.1:9"])

    assert caught.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["messages", "--state", "queued,lost"], "unknown message state 'lost'"),
        (["messages", "--since", "2026-12-01"], "no time zone"),
        (["enable", "--org", "a", "--integration", "b", "--rate-per-number", "x"], "a rate is N"),
        (["enable", "--org", "a", "--integration", "b", "--number", "+1@x"], "a rate is N"),
        (["enable", "--org", "a", "--integration", "b", "--max-queued", "-1"], "from 0 to"),
        (["enable", "--org", "a", "--integration", "b", "--rate-unit", "bytes"], "invalid choice"),
    ],
)
def test_other_commands_refuse_bad_words(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*arguments, "--target", "127.0.0.1:9"])

    assert caught.value.code == 2
    assert message in capsys.readouterr().err
