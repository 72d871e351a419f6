"""The command line's words for the delivery pipeline: times, rates, message states and limits.

Each parser is a pure function that raises ``ValueError`` with a sentence for the user, and an
argparse type wraps it (``argparse.ArgumentTypeError``: argparse's message and exit 2), so the
rules can be tested without a parser. Relative times are taken from a ``now`` the caller passes.

A time is ISO 8601 with an offset (``2026-12-06T15:00:00+01:00``, ``…Z``) — a time without one is
refused, since the gateway could only guess its zone — or a duration: ``+10m`` from now for a send
time (``--at``), ``2h`` (or ``-2h``) ago for a listing's bounds (``--since``, ``--until``).
A rate is ``N[/s]`` (also ``N/min``, ``N/h``), per second in the API (docs/delivery.md).
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from msgbridge.v1 import gateway_pb2

from ._delivery import MessageState, RateUnit, SendLimits, SendMode, SendOptions, Throughput

__all__ = [
    "MESSAGE_STATE_NAMES",
    "argument_type",
    "check_rate_options",
    "limits_given",
    "number_with_rate",
    "parse_duration",
    "parse_past_time",
    "parse_rate",
    "parse_send_time",
    "parse_states",
    "past_time",
    "send_limits",
    "send_options",
    "send_time",
    "with_number_rates",
]

_T = TypeVar("_T")

# "queued" → Message.QUEUED, every state but STATE_UNSPECIFIED, lower case as the CLI shows them.
MESSAGE_STATE_NAMES: dict[str, MessageState] = {
    name.lower(): value
    for name, value in gateway_pb2.Message.State.items()
    if value != gateway_pb2.Message.STATE_UNSPECIFIED
}

# At most nine digits a part: a longer one is a typo, and Python refuses to parse huge integers.
_DURATION = re.compile(r"(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?")
_RATE_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
# About ten years: far enough for any schedule, and far below datetime's range.
_MAX_DURATION = datetime.timedelta(days=3660)


def parse_duration(text: str) -> datetime.timedelta:
    """``90s``, ``10m``, ``2h``, ``1d``, or several at once in that order (``1h30m``)."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"a duration is like 30s, 10m, 2h, 1d or 1h30m, got {text!r}")
    days, hours, minutes, secs = (int(part or 0) for part in match.groups())
    try:
        duration = datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=secs)
    except OverflowError:
        duration = _MAX_DURATION * 2
    if duration > _MAX_DURATION:
        raise ValueError(f"a duration must be at most {_MAX_DURATION.days} days, got {text!r}")
    return duration


def _aware(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (ISO 8601 with an offset, e.g. 2026-12-06T15:00:00+01:00)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no time zone: add an offset (e.g. {text}+01:00 or {text}Z), "
            "or give a relative time such as +10m"
        )
    return moment


def _looks_relative(text: str) -> bool:
    return bool(text) and (text[0] in "+-" or text[0].isdigit()) and text[-1] in "smhd"


def parse_send_time(text: str, *, now: datetime.datetime) -> datetime.datetime:
    """A send time (``--at``): ISO 8601 with an offset, or ``+DURATION`` (``DURATION``) from now."""
    text = text.strip()
    if _looks_relative(text):
        if text.startswith("-"):
            raise ValueError(f"a send time is in the future: {text!r} is in the past (use +)")
        return now + parse_duration(text.removeprefix("+"))
    return _aware(text)


def parse_past_time(text: str, *, now: datetime.datetime) -> datetime.datetime:
    """A listing's bound (``--since``, ``--until``): ISO 8601 with an offset, or ``DURATION``
    (``-DURATION``) ago."""
    text = text.strip()
    if _looks_relative(text):
        if text.startswith("+"):
            raise ValueError(f"{text!r} is in the future: give how long ago, e.g. 2h or -2h")
        return now - parse_duration(text.removeprefix("-"))
    return _aware(text)


def parse_rate(text: str) -> float:
    """``N``, ``N/s``, ``N/min`` or ``N/h`` as messages (or segments) per second; 0: no limit."""
    number, _, period = text.strip().partition("/")
    try:
        count = float(number)
    except ValueError:
        raise ValueError(f"a rate is N[/s] (or N/min, N/h), got {text!r}") from None
    seconds = _RATE_PERIODS.get(period.strip() or "s")
    if seconds is None:
        raise ValueError(f"a rate's period is /s, /min or /h, got {text!r}")
    if not (math.isfinite(count) and count >= 0):
        raise ValueError(f"a rate must be a finite number ≥ 0 (0: no limit), got {text!r}")
    return count / seconds


def parse_states(text: str) -> list[MessageState]:
    """``queued,sent``: comma-separated state names (see MESSAGE_STATE_NAMES)."""
    states: list[MessageState] = []
    for name in (part.strip().lower() for part in text.split(",")):
        if name not in MESSAGE_STATE_NAMES:
            names = ", ".join(MESSAGE_STATE_NAMES)
            raise ValueError(f"unknown message state {name!r} (one of {names})")
        states.append(MESSAGE_STATE_NAMES[name])
    return states


def number_with_rate(text: str) -> gateway_pb2.NumberAssignment:
    """``NUMBER[@RATE][=EXT[,EXT...]]``: a number, its own send rate, and its users.

    The rate's unit and burst come from ``--rate-unit`` and ``--burst`` (:func:`with_number_rates`).
    """
    head, _, users = text.partition("=")
    number, at, rate = head.rpartition("@") if "@" in head else (head, "", "")
    number = number.strip()
    if not number:
        raise ValueError(f"number must be NUMBER[@RATE][=EXT,...], got {text!r}")
    assignment = gateway_pb2.NumberAssignment(
        number=number, users=[user.strip() for user in users.split(",") if user.strip()]
    )
    if at:
        assignment.throughput.per_second = parse_rate(rate)
    return assignment


def argument_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """``parse`` as an argparse type: its ValueError becomes argparse's usage message."""

    def wrapped(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _send_time_now(text: str) -> datetime.datetime:
    return parse_send_time(text, now=_now())


def _past_time_now(text: str) -> datetime.datetime:
    return parse_past_time(text, now=_now())


# argparse types: a relative time is taken from the moment the command line is parsed.
send_time = argument_type(_send_time_now)
past_time = argument_type(_past_time_now)


# -- from the parsed arguments ----------------------------------------------------------------


def send_options(args: argparse.Namespace) -> SendOptions | None:
    """``--queue``, ``--at``, ``--unordered``; None when none is given (the request stays as a
    server without the queue knows it)."""
    if not (args.queue or args.at is not None or args.unordered):
        return None
    mode = SendMode.QUEUE if args.queue else SendMode.WAIT
    return SendOptions(mode=mode, send_at=args.at, unordered=args.unordered)


def _rate_unit(args: argparse.Namespace) -> RateUnit:
    return RateUnit.SEGMENTS if args.rate_unit == "segments" else RateUnit.MESSAGES


def _rates_given(args: argparse.Namespace, numbers: Sequence[gateway_pb2.NumberAssignment]) -> bool:
    return (
        args.rate_per_number is not None
        or args.rate_per_installation is not None
        or any(number.HasField("throughput") for number in numbers)
    )


def limits_given(args: argparse.Namespace) -> bool:
    """Whether the command line names any installation limit."""
    return any(
        value is not None
        for value in (
            args.rate_per_number,
            args.rate_per_installation,
            args.max_queued,
            args.max_segments,
        )
    )


def check_rate_options(
    args: argparse.Namespace, numbers: Sequence[gateway_pb2.NumberAssignment]
) -> None:
    """``--rate-unit`` and ``--burst`` qualify the rates given with them: alone they mean
    nothing (ValueError)."""
    if (args.rate_unit is not None or args.burst is not None) and not _rates_given(args, numbers):
        raise ValueError(
            "--rate-unit and --burst qualify a rate: give --rate-per-number, "
            "--rate-per-installation or a NUMBER@RATE"
        )


def with_number_rates(
    args: argparse.Namespace, numbers: Sequence[gateway_pb2.NumberAssignment]
) -> list[gateway_pb2.NumberAssignment]:
    """Copies of ``numbers`` whose ``@RATE`` carries ``--rate-unit`` and ``--burst``."""
    check_rate_options(args, numbers)
    result = []
    for number in numbers:
        copy = gateway_pb2.NumberAssignment()
        copy.CopyFrom(number)
        if copy.HasField("throughput"):
            copy.throughput.CopyFrom(_throughput(args, copy.throughput.per_second).to_proto())
        result.append(copy)
    return result


def _throughput(args: argparse.Namespace, per_second: float) -> Throughput:
    return Throughput(per_second=per_second, unit=_rate_unit(args), burst=args.burst or 0)


def send_limits(args: argparse.Namespace, current: SendLimits | None = None) -> SendLimits:
    """The limits the command line names, over ``current`` (an update keeps what it does not
    name; UpdateInstallation replaces the whole SendLimits)."""
    limits = current or SendLimits()
    if args.rate_per_number is not None:
        limits = replace(limits, per_number=_throughput(args, args.rate_per_number))
    if args.rate_per_installation is not None:
        limits = replace(limits, per_installation=_throughput(args, args.rate_per_installation))
    if args.max_queued is not None:
        limits = replace(limits, max_queued=args.max_queued)
    if args.max_segments is not None:
        limits = replace(limits, max_segments=args.max_segments)
    return limits
