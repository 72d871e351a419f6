"""The delivery pipeline's side of the client: send options, send limits, and message listings.

Every send is recorded in the gateway's queue first (docs/delivery.md); these frozen dataclasses
are how a caller says how a send waits (:class:`SendOptions`) and how fast an installation or a
number may send (:class:`SendLimits`, :class:`Throughput`, :class:`Number`). Each turns into its
protobuf message with ``to_proto``, and a limit read back from an ``Installation`` turns into a
dataclass with ``from_proto``. Times are aware :class:`datetime.datetime` values: a naive one is
refused (``ValueError``), since the gateway could only guess its time zone.
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from google.protobuf import timestamp_pb2

from msgbridge.v1 import gateway_pb2

__all__ = [
    "INT32_MAX",
    "MessageState",
    "Number",
    "RateUnit",
    "SendLimits",
    "SendMode",
    "SendOptions",
    "Throughput",
    "cancel_message_request",
    "list_messages_request",
    "timestamp",
]

INT32_MAX = 2**31 - 1

# A Message.State value, e.g. gateway_pb2.Message.QUEUED (a SendReply's state is one too).
MessageState: TypeAlias = gateway_pb2.Message.State.ValueType


def timestamp(moment: datetime.datetime, what: str) -> timestamp_pb2.Timestamp:
    """``moment`` as a protobuf Timestamp; ``what`` names it when it is naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime (with a time zone), got {moment}")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(datetime.UTC))
    return stamp


class SendMode(enum.Enum):
    """How long a send waits for the provider (``SendOptions.Mode``)."""

    # Reply when the provider has answered, or QUEUED when the caller's deadline nears first.
    WAIT = gateway_pb2.SendOptions.WAIT
    # Reply at once with state QUEUED; the outcome follows as an event.
    QUEUE = gateway_pb2.SendOptions.QUEUE


@dataclass(frozen=True, kw_only=True, slots=True)
class SendOptions:
    """How one send waits: ``mode``, a ``send_at`` time (a scheduled send, replied QUEUED at
    once), and ``unordered`` (may leave before earlier messages of its conversation)."""

    mode: SendMode = SendMode.WAIT
    send_at: datetime.datetime | None = None
    unordered: bool = False

    def __post_init__(self) -> None:
        if self.send_at is not None:
            timestamp(self.send_at, "send_at")  # refuses a naive time when it is made

    def to_proto(self) -> gateway_pb2.SendOptions:
        options = gateway_pb2.SendOptions(mode=self.mode.value, unordered=self.unordered)
        if self.send_at is not None:
            options.send_at.CopyFrom(timestamp(self.send_at, "send_at"))
        return options


class RateUnit(enum.Enum):
    """What a :class:`Throughput` counts (``Throughput.Unit``)."""

    MESSAGES = gateway_pb2.Throughput.MESSAGES
    # Each message counts its SMS segments (SendReply.segments).
    SEGMENTS = gateway_pb2.Throughput.SEGMENTS


@dataclass(frozen=True, kw_only=True, slots=True)
class Throughput:
    """``per_second`` messages (or segments) a second, up to ``burst`` at once (0: one second's
    worth); ``per_second`` 0 is an explicit "no limit"."""

    per_second: float
    unit: RateUnit = RateUnit.MESSAGES
    burst: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second >= 0):
            raise ValueError(f"per_second must be a finite number ≥ 0, not {self.per_second}")
        if not 0 <= self.burst <= INT32_MAX:
            raise ValueError(f"burst must be from 0 to {INT32_MAX}, not {self.burst}")

    def to_proto(self) -> gateway_pb2.Throughput:
        return gateway_pb2.Throughput(
            per_second=self.per_second, unit=self.unit.value, burst=self.burst
        )

    @classmethod
    def from_proto(cls, throughput: gateway_pb2.Throughput) -> Throughput:
        # An unspecified unit is MESSAGES (the proto's default).
        unit = (
            RateUnit.SEGMENTS
            if throughput.unit == gateway_pb2.Throughput.SEGMENTS
            else RateUnit.MESSAGES
        )
        return cls(per_second=throughput.per_second, unit=unit, burst=throughput.burst)


@dataclass(frozen=True, kw_only=True, slots=True)
class SendLimits:
    """An installation's own limits; a field left None (or 0) takes the definition's default.

    ``max_queued``: the most messages waiting at once (above it RESOURCE_EXHAUSTED QUEUE_FULL);
    ``max_segments``: the most SMS segments one message may take (above it INVALID_ARGUMENT
    TOO_MANY_SEGMENTS).
    """

    per_number: Throughput | None = None
    per_installation: Throughput | None = None
    max_queued: int = 0
    max_segments: int = 0

    def __post_init__(self) -> None:
        for name in ("max_queued", "max_segments"):
            value = getattr(self, name)
            if not 0 <= value <= INT32_MAX:
                raise ValueError(f"{name} must be from 0 to {INT32_MAX}, not {value}")

    def to_proto(self) -> gateway_pb2.SendLimits:
        limits = gateway_pb2.SendLimits(max_queued=self.max_queued, max_segments=self.max_segments)
        if self.per_number is not None:
            limits.per_number.CopyFrom(self.per_number.to_proto())
        if self.per_installation is not None:
            limits.per_installation.CopyFrom(self.per_installation.to_proto())
        return limits

    @classmethod
    def from_proto(cls, limits: gateway_pb2.SendLimits) -> SendLimits:
        return cls(
            per_number=(
                Throughput.from_proto(limits.per_number) if limits.HasField("per_number") else None
            ),
            per_installation=(
                Throughput.from_proto(limits.per_installation)
                if limits.HasField("per_installation")
                else None
            ),
            max_queued=limits.max_queued,
            max_segments=limits.max_segments,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Number:
    """A number of an installation, the users assigned to it, and its own send rate (None: the
    installation's per-number limit)."""

    number: str
    users: Sequence[str] = ()
    throughput: Throughput | None = None

    def to_proto(self) -> gateway_pb2.NumberAssignment:
        assignment = gateway_pb2.NumberAssignment(number=self.number, users=list(self.users))
        if self.throughput is not None:
            assignment.throughput.CopyFrom(self.throughput.to_proto())
        return assignment


def list_messages_request(
    *,
    org_id: str,
    installation_id: str,
    states: Sequence[MessageState],
    created_after: datetime.datetime | None,
    created_before: datetime.datetime | None,
    page_size: int,
    page_token: str = "",
) -> gateway_pb2.ListMessagesRequest:
    request = gateway_pb2.ListMessagesRequest(
        org_id=org_id,
        installation_id=installation_id,
        states=list(states),
        page_size=page_size,
        page_token=page_token,
    )
    if created_after is not None:
        request.created_after.CopyFrom(timestamp(created_after, "created_after"))
    if created_before is not None:
        request.created_before.CopyFrom(timestamp(created_before, "created_before"))
    return request


def cancel_message_request(message_id: str) -> gateway_pb2.CancelMessageRequest:
    return gateway_pb2.CancelMessageRequest(message_id=message_id)
