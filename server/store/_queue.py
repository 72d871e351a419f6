"""The send queue's records and errors (docs/delivery.md): what the store is asked when a message
is enqueued or claimed, and the opt-outs a send is refused for.

The store applies these rules inside one transaction each, so that they hold across replicas:
a rate's slots (:class:`RateSlot`, the generic cell rate algorithm: each key keeps the
*theoretical arrival time* ``tat`` of its next message), the order of a conversation (no message
leaves while an earlier one of the same installation, from and to is ``queued`` or ``sending``,
unless it is unordered), the installation's queue cap and the opt-outs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ._base import MessageRecord, NewEvent, StoreError, Unset
from ._rows import encode_ids

__all__ = [
    "ATTEMPT_LOG_SIZE",
    "ClaimOutcome",
    "OptOutRecord",
    "OptedOut",
    "OutcomeEvent",
    "QueueFull",
    "RateSlot",
    "finish_changes",
    "outcome_event",
    "slot_wait",
    "taken_tat",
]


class QueueFull(StoreError):
    """The installation already has its most queued messages; nothing was recorded."""

    def __init__(self, installation_id: str, limit: int) -> None:
        super().__init__(f"installation {installation_id!r} has {limit} queued messages")
        self.installation_id = installation_id
        self.limit = limit


class OptedOut(StoreError):
    """The recipient opted out of the sender; nothing was recorded."""

    def __init__(self, record: OptOutRecord) -> None:
        super().__init__("the recipient opted out of this sender")
        self.record = record


@dataclass(frozen=True, slots=True)
class RateSlot:
    """One rate a message is sent under: ``cost`` units of a rate of ``1/interval_s`` units a
    second with a ``burst`` of units at once. Taken when ``max(tat, now) + cost * interval_s -
    now <= burst * interval_s``; taking it sets ``tat`` to ``max(tat, now) + cost *
    interval_s``. A cost above the burst is taken when the key is idle (``tat <= now``)."""

    key: str
    cost: float
    interval_s: float
    burst: float


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """What claiming a queued message came to: ``message`` (now ``sending``, leased to the
    claimer) when it was claimed; else ``retry_in_s`` when a rate refused it (the seconds until
    ``key`` has a slot), else neither (it is no longer claimable: sent, cancelled, claimed
    elsewhere, or an earlier message of its conversation is waiting)."""

    message: MessageRecord | None = None
    retry_in_s: float | None = None
    key: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OptOutRecord:
    """A recipient (``to_number``) who opted out of an installation's sender (``from_number``):
    ``source`` is ``inbound`` (a STOP-type event) or ``provider`` (a send's error)."""

    installation_id: str
    org_id: str
    from_number: str
    to_number: str
    source: str
    created_at: datetime


#: An attempt's outcome event as :meth:`Store.finish_attempt` takes it: the event, or a function
#: giving it (called only when the event is published).
OutcomeEvent = NewEvent | Callable[[], NewEvent]


def outcome_event(event: OutcomeEvent) -> NewEvent:
    """The event itself."""
    return event if isinstance(event, NewEvent) else event()


def slot_wait(tat: float | None, now: float, slot: RateSlot) -> float:
    """Seconds until ``slot`` can be taken from a key whose theoretical arrival time is ``tat``
    (None: never used), at ``now`` (seconds since the epoch); 0 when it can be taken now. The
    generic cell rate algorithm: see :class:`RateSlot`."""
    if tat is None or tat <= now:
        return 0.0
    if slot.cost > slot.burst:  # a message bigger than the burst waits for an idle key
        return tat - now
    allowed_at = tat + (slot.cost - slot.burst) * slot.interval_s
    return max(0.0, allowed_at - now)


def taken_tat(tat: float | None, now: float, slot: RateSlot) -> float:
    """The key's theoretical arrival time once ``slot`` is taken at ``now``."""
    start = now if tat is None else max(tat, now)
    return start + slot.cost * slot.interval_s


#: The attempts a message's log keeps (the latest ones).
ATTEMPT_LOG_SIZE = 20


def finish_changes(
    provider_message_id: str | Unset | None,
    provider_status: int | Unset | None,
    error: str | Unset | None,
    reply_json: str | Unset | None,
    provider_message_ids: Sequence[str] | Unset,
) -> tuple[object, ...]:
    """What the end of an attempt changes, as the statements of both stores take it: a (changed?,
    new value) pair for each of these fields, in this order (the provider ids as stored), the
    value None when it is unchanged (:data:`~server.store.UNSET`)."""
    ids = provider_message_ids
    pairs: list[object] = []
    for value in (
        provider_message_id,
        provider_status,
        error,
        reply_json,
        ids if isinstance(ids, Unset) else encode_ids(ids),
    ):
        changed = not isinstance(value, Unset)
        pairs += (changed, value if changed else None)
    return tuple(pairs)
