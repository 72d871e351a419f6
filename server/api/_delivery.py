"""The delivery pipeline's protobuf (docs/delivery.md): send limits and per-number rates ⇄ the
core's :class:`SendLimits`, a send's options, a message's attempts. Pure, like ``_convert``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from msgbridge.v1 import gateway_pb2

from ..core import SendLimits, Throughput, check_limits, limits_from_json
from ..store import AttemptRecord, InstallationRecord, MessageState

__all__ = [
    "MESSAGE_STATES",
    "attempt_pb",
    "limits_of",
    "number_throughput_pb",
    "send_limits_pb",
    "send_options",
    "states_of",
]

MESSAGE_STATES = {
    MessageState.PENDING: gateway_pb2.Message.PENDING,
    MessageState.SENT: gateway_pb2.Message.SENT,
    MessageState.DELIVERED: gateway_pb2.Message.DELIVERED,
    MessageState.FAILED: gateway_pb2.Message.FAILED,
    MessageState.QUEUED: gateway_pb2.Message.QUEUED,
    MessageState.SENDING: gateway_pb2.Message.SENDING,
    MessageState.CANCELLED: gateway_pb2.Message.CANCELLED,
}
_STATES_OF = {value: state for state, value in MESSAGE_STATES.items()}

_UNITS = {
    gateway_pb2.Throughput.UNIT_UNSPECIFIED: "messages",
    gateway_pb2.Throughput.MESSAGES: "messages",
    gateway_pb2.Throughput.SEGMENTS: "segments",
}
_UNIT_PB = {
    "messages": gateway_pb2.Throughput.MESSAGES,
    "segments": gateway_pb2.Throughput.SEGMENTS,
}


def states_of(values: Sequence[gateway_pb2.Message.State.ValueType]) -> frozenset[MessageState]:
    """The states a list filter names (unknown values are ignored)."""
    return frozenset(_STATES_OF[v] for v in values if v in _STATES_OF)


def _throughput(pb: gateway_pb2.Throughput) -> Throughput:
    return Throughput(
        per_second=pb.per_second, unit=_UNITS.get(pb.unit, "messages"), burst=pb.burst
    )


def _throughput_pb(rate: Throughput) -> gateway_pb2.Throughput:
    return gateway_pb2.Throughput(
        per_second=rate.per_second,
        unit=_UNIT_PB.get(rate.unit, gateway_pb2.Throughput.MESSAGES),
        burst=rate.burst,
    )


def limits_of(
    pb: gateway_pb2.SendLimits | None, numbers: Sequence[gateway_pb2.NumberAssignment]
) -> SendLimits | None:
    """The limits a request sets (numbers keyed as given), or None when it sets none; checked
    (INVALID_ARGUMENT)."""
    own = {n.number: _throughput(n.throughput) for n in numbers if n.HasField("throughput")}
    if pb is None and not own:
        return None
    pb = pb or gateway_pb2.SendLimits()
    limits = SendLimits(
        per_number=_throughput(pb.per_number) if pb.HasField("per_number") else None,
        per_installation=(
            _throughput(pb.per_installation) if pb.HasField("per_installation") else None
        ),
        max_queued=pb.max_queued,
        max_segments=pb.max_segments,
        numbers=MappingProxyType(own),
    )
    check_limits(limits)
    return limits


def send_limits_pb(record: InstallationRecord) -> gateway_pb2.SendLimits:
    """The installation's own limits (not the definition's defaults)."""
    limits = limits_from_json(record.send_limits_json)
    pb = gateway_pb2.SendLimits(max_queued=limits.max_queued, max_segments=limits.max_segments)
    if limits.per_number is not None:
        pb.per_number.CopyFrom(_throughput_pb(limits.per_number))
    if limits.per_installation is not None:
        pb.per_installation.CopyFrom(_throughput_pb(limits.per_installation))
    return pb


def number_throughput_pb(record: InstallationRecord, number: str) -> gateway_pb2.Throughput | None:
    """A number's own rate, if it has one (``number`` as stored)."""
    rate = limits_from_json(record.send_limits_json).numbers.get(number)
    return None if rate is None else _throughput_pb(rate)


def send_options(
    options: gateway_pb2.SendOptions,
) -> tuple[bool, datetime | None, bool]:
    """(queue, send_at, unordered) of a send's options."""
    send_at = None
    if options.HasField("send_at"):
        send_at = options.send_at.ToDatetime(tzinfo=UTC)
    return options.mode == gateway_pb2.SendOptions.QUEUE, send_at, options.unordered


def attempt_pb(attempt: AttemptRecord) -> gateway_pb2.MessageAttempt:
    pb = gateway_pb2.MessageAttempt(
        number=attempt.number,
        provider_status=attempt.provider_status or 0,
        reason=attempt.reason,
        error=attempt.error,
    )
    pb.started_at.FromDatetime(attempt.started_at)
    pb.ended_at.FromDatetime(attempt.ended_at)
    if attempt.retry_at is not None:
        pb.retry_at.FromDatetime(attempt.retry_at)
    return pb
