"""The invariants of the queued-send phase (docs/delivery.md), pure functions of the records:

- what the callers were answered (:class:`QueuedSend`: a message id, or the error that ended the
  send), keyed by the idempotency key each message carries in its metadata;
- every message of the organisation as the gateway ends it (:class:`MessageView`);
- our ids of the messages the fake provider received, one per request, in order of receipt.

A message's outcome is *unknown* when it may have reached the provider without the gateway
knowing: an attempt ended OUTCOME_UNKNOWN (its replica was killed mid-call and another ended it
after the lease), or it FAILED with reason OUTCOME_UNKNOWN (the provider's answer never came).
Only such a message may have been received twice.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._invariants import Invariant

__all__ = [
    "OUTCOME_UNKNOWN",
    "MessageView",
    "conversation_order",
    "queued_sends_ended",
    "sent_at_most_once",
]

OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
_ENDED = frozenset({"SENT", "DELIVERED", "FAILED", "CANCELLED"})


class _Answered(Protocol):
    """What a caller was answered for one send (:class:`tests.reliability._queued.QueuedSend`)."""

    @property
    def key(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def replied(self) -> str: ...
    @property
    def cancel(self) -> str: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageView:
    """A message as ``ListMessages`` shows it; ``key`` is its caller's key (metadata)."""

    id: str
    key: str
    to: str
    state: str  # a Message.State name
    created_ns: int
    error: str = ""
    attempt_reasons: tuple[str, ...] = ()

    @property
    def unknown(self) -> bool:
        """Whether it may have reached the provider without the gateway knowing."""
        failed_unknown = self.state == "FAILED" and OUTCOME_UNKNOWN in self.error
        return failed_unknown or OUTCOME_UNKNOWN in self.attempt_reasons


def _some(items: Iterable[str]) -> list[str]:
    return sorted(items)[:5]


def queued_sends_ended(sends: Sequence[_Answered], messages: Sequence[MessageView]) -> Invariant:
    """Every accepted message (its caller got its id) has a record that ended SENT, FAILED or
    CANCELLED — none still QUEUED or SENDING (stuck), none without a record (lost) — a key has
    one record at most, and a message whose cancel the gateway confirmed ended CANCELLED. A send
    that ended with an error instead of an id is counted apart; its record, if it has one, must
    have ended too."""
    by_id = {m.id: m for m in messages}
    per_key = collections.Counter(m.key for m in messages if m.key)
    by_key = {m.key: m for m in messages if m.key}
    accepted = [s for s in sends if s.message_id]
    refused = [s for s in sends if not s.message_id]
    lost = [s for s in accepted if s.message_id not in by_id]
    records = [by_id[s.message_id] for s in accepted if s.message_id in by_id]
    records += [by_key[s.key] for s in refused if s.key in by_key]
    stuck = [m for m in records if m.state not in _ENDED]
    doubled = [k for k in (s.key for s in sends) if per_key[k] > 1]
    cancelled = [s for s in accepted if s.cancel == "CANCELLED"]
    uncancelled = [
        s for s in cancelled if s.message_id in by_id and by_id[s.message_id].state != "CANCELLED"
    ]
    failed = [m for m in records if m.state == "FAILED"]
    unknown = sum(1 for m in failed if m.unknown)
    return Invariant(
        name="every accepted queued message ended SENT, FAILED or CANCELLED",
        ok=len(accepted) > 0 and not lost and not stuck and not doubled and not uncancelled,
        counts={
            "sends": len(sends),
            "accepted": len(accepted),
            "replied QUEUED": sum(1 for s in accepted if s.replied == "QUEUED"),
            "replied SENDING": sum(1 for s in accepted if s.replied == "SENDING"),
            "replied SENT": sum(1 for s in accepted if s.replied == "SENT"),
            "ended with an error reply": len(refused),
            "ended SENT": sum(1 for m in records if m.state in ("SENT", "DELIVERED")),
            "ended FAILED OUTCOME_UNKNOWN": unknown,
            "ended FAILED other": len(failed) - unknown,
            "ended CANCELLED": sum(1 for m in records if m.state == "CANCELLED"),
            "stuck": len(stuck),
            "lost": len(lost),
            "keys with several records": len(doubled),
            "cancels asked": sum(1 for s in sends if s.cancel),
            "cancels confirmed": len(cancelled),
            "confirmed but not CANCELLED": len(uncancelled),
        },
        examples=[f"lost {s.key}" for s in lost[:3]]
        + [f"stuck {m.key} {m.state}" for m in stuck[:3]]
        + [f"several records for {k}" for k in _some(doubled)[:2]]
        + [f"{s.key} cancelled, ended {by_id[s.message_id].state}" for s in uncancelled[:2]]
        + [f"{s.key}: {s.replied}" for s in refused[:2]]
        + [f"{m.key} FAILED {m.attempt_reasons}: {m.error[:120]}" for m in failed if not m.unknown][
            :3
        ],
    )


def sent_at_most_once(
    phase: Sequence[MessageView], everything: Iterable[MessageView], receipts: Sequence[str]
) -> Invariant:
    """No message of the phase reached the provider twice unless its outcome was unknown; a
    SENT message reached it, a CANCELLED one did not, and the provider received no message the
    gateway does not know (``everything``: every message of the run)."""
    times = collections.Counter(receipts)
    twice = [m for m in phase if times[m.id] > 1]
    without_unknown = [m for m in twice if not m.unknown]
    unreceived = [m for m in phase if m.state == "SENT" and times[m.id] == 0]
    cancelled = [m for m in phase if m.state == "CANCELLED" and times[m.id] > 0]
    known = {m.id for m in everything}
    strangers = {r for r in times if r not in known}
    return Invariant(
        name="no queued message sent twice unless its outcome was unknown",
        ok=not without_unknown and not unreceived and not cancelled and not strangers,
        counts={
            "provider requests": sum(times[m.id] for m in phase),
            "messages received": sum(1 for m in phase if times[m.id] > 0),
            "sent twice": len(twice),
            "of which outcome unknown": len(twice) - len(without_unknown),
            "sent twice without unknown outcome": len(without_unknown),
            "SENT but never received": len(unreceived),
            "CANCELLED but received": len(cancelled),
            "received but unknown to the gateway": len(strangers),
        },
        examples=[f"{m.key} ×{times[m.id]} ({m.state})" for m in without_unknown[:3]]
        + [f"{m.key} SENT, not received" for m in unreceived[:3]]
        + [f"{m.key} CANCELLED, received" for m in cancelled[:3]]
        + _some(strangers)[:3],
    )


def conversation_order(phase: Sequence[MessageView], receipts: Sequence[str]) -> Invariant:
    """In each conversation (one sender, one recipient), the messages that did not fail reached
    the provider — their first receipt — in the order they were accepted (created)."""
    first: dict[str, int] = {}
    for position, message_id in enumerate(receipts):
        first.setdefault(message_id, position)
    conversations: dict[str, list[MessageView]] = collections.defaultdict(list)
    for message in phase:
        if message.state != "FAILED" and message.id in first:
            conversations[message.to].append(message)
    violations = 0
    examples = []
    bad = 0
    for to, messages in sorted(conversations.items()):
        messages.sort(key=lambda m: (m.created_ns, m.id))
        inversions = [(a, b) for a, b in itertools.pairwise(messages) if first[b.id] < first[a.id]]
        violations += len(inversions)
        bad += bool(inversions)
        examples += [f"{to}: {b.key} reached the provider before {a.key}" for a, b in inversions]
    return Invariant(
        name="each conversation's messages reached the provider in the order accepted",
        ok=violations == 0 and len(conversations) > 0,
        counts={
            "conversations": len(conversations),
            "messages checked": sum(len(m) for m in conversations.values()),
            "order violations": violations,
            "conversations out of order": bad,
        },
        examples=examples[:5],
    )
