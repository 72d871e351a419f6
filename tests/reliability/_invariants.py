"""The invariants of a run, computed from what every party recorded, each with its counts.

Pure functions of the records (no I/O), so that they can be tested on their own:

- webhooks: what the provider posted and which were answered 2xx (:class:`WebhookSender`),
  what the durable consumer's subscribers received, and the events the log holds;
- sends: every keyed send's attempts (replica, times, outcome), the kills, and the requests the
  fake provider received (one text per key);
- the cursor follower: the cursors it received, in order, against the log.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ._sends import SendRecord

__all__ = [
    "Invariant",
    "acknowledged_webhooks",
    "delivered_to_consumer",
    "follower_without_gap",
    "keyed_sends_extra_calls",
    "keyed_sends_reached_provider",
    "one_event_per_webhook",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Invariant:
    name: str
    ok: bool
    counts: Mapping[str, int] = field(default_factory=dict)
    examples: Sequence[str] = ()

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        text = f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {counts}"
        if self.examples:
            text += f" (e.g. {', '.join(self.examples[:5])})"
        return text


def _some(items: Iterable[str]) -> list[str]:
    return sorted(items)[:5]


def acknowledged_webhooks(posted: Sequence[str], acknowledged: Mapping[str, int]) -> Invariant:
    """Every webhook posted was, retried as needed, answered 2xx in the end."""
    missing = set(posted) - set(acknowledged)
    return Invariant(
        name="every webhook posted was answered 2xx (retried until then)",
        ok=not missing and len(posted) > 0,
        counts={
            "posted": len(posted),
            "acknowledged": len(acknowledged),
            "never acknowledged": len(missing),
            "after retries": sum(1 for a in acknowledged.values() if a > 1),
        },
        examples=_some(missing),
    )


def delivered_to_consumer(
    acknowledged: Iterable[str], deliveries: Mapping[str, int], posted: Iterable[str]
) -> Invariant:
    """Every acknowledged webhook reached a subscriber of the durable consumer at least once,
    and the consumer received nothing that was never posted."""
    acked = set(acknowledged)
    lost = {p for p in acked if deliveries.get(p, 0) < 1}
    invented = set(deliveries) - set(posted)
    return Invariant(
        name="every acknowledged webhook delivered to a consumer at least once",
        ok=not lost and not invented,
        counts={
            "acknowledged": len(acked),
            "delivered": len(acked) - len(lost),
            "lost": len(lost),
            "invented": len(invented),
            "delivered more than once": sum(1 for p in acked if deliveries.get(p, 0) > 1),
        },
        examples=_some(lost | invented),
    )


def one_event_per_webhook(
    acknowledged: Iterable[str], posted: Iterable[str], events: Sequence[tuple[int, str]]
) -> Invariant:
    """The log holds exactly one event per acknowledged webhook (``events``: cursor, provider
    message id) and none for anything never posted. A posted webhook never acknowledged may have
    one (stored, then its answer lost) but not two."""
    per_id = collections.Counter(p for _, p in events)
    acked, known = set(acknowledged), set(posted)
    lost = {p for p in acked if per_id[p] == 0}
    doubled = {p for p, n in per_id.items() if n > 1}
    invented = set(per_id) - known
    return Invariant(
        name="exactly one event per acknowledged webhook",
        ok=not lost and not doubled and not invented,
        counts={
            "events": len(events),
            "acknowledged": len(acked),
            "lost": len(lost),
            "doubled": len(doubled),
            "invented": len(invented),
        },
        examples=_some(lost | doubled | invented),
    )


def keyed_sends_reached_provider(
    records: Sequence[SendRecord],
    provider_calls: Mapping[str, int],
    killed_during: Callable[[float, float], bool],
) -> Invariant:
    """Every keyed send succeeded for its caller and reached the provider (``provider_calls``:
    text → calls the fake provider received), and the provider received no other text. A send
    may instead have failed OUTCOME_UNKNOWN when a replica was killed while it was under way
    (``killed_during(started, ended)``): its call was cut off, and whether it reached the
    provider cannot be known."""
    texts = {r.text for r in records}
    failed = [r for r in records if not r.succeeded]
    unknown = [
        r
        for r in failed
        if "OUTCOME_UNKNOWN" in r.error
        and r.attempts
        and killed_during(r.attempts[0].started, r.attempts[-1].ended)
    ]
    for_good = [r for r in failed if r not in unknown]
    unreached = [r for r in records if r.succeeded and provider_calls.get(r.text, 0) < 1]
    strangers = set(provider_calls) - texts
    return Invariant(
        name="every keyed send reached the provider (or its outcome was cut off by a kill)",
        ok=not for_good and not unreached and not strangers and len(records) > 0,
        counts={
            "keys": len(records),
            "succeeded": len(records) - len(failed),
            "reached the provider": len(records) - len(failed) - len(unreached),
            "missing": len(unreached),
            "outcome unknown after a kill": len(unknown),
            "failed for good": len(for_good),
            "unknown provider calls": len(strangers),
        },
        examples=[f"{r.key}: {r.error or 'no provider call'}" for r in (for_good + unreached)[:5]]
        + _some(strangers),
    )


def keyed_sends_extra_calls(
    records: Sequence[SendRecord],
    provider_calls: Mapping[str, int],
    hit: Callable[[str, float, float], bool],
) -> Invariant:
    """A key makes one provider call, plus at most one per attempt of it that a kill of its
    replica cut off while it was open (``hit(replica, started, ended)``)."""
    extra = allowed = over = 0
    hit_keys = 0
    examples = []
    for record in records:
        calls = provider_calls.get(record.text, 0)
        cut = sum(
            1 for a in record.attempts if a.outcome != "OK" and hit(a.replica, a.started, a.ended)
        )
        hit_keys += cut > 0
        extra += max(0, calls - 1)
        allowed += cut
        if calls - 1 > cut:
            over += calls - 1 - cut
            examples.append(f"{record.key}: {calls} calls, {cut} attempts cut by a kill")
    return Invariant(
        name="at most one extra provider call per kill that hit a call in flight",
        ok=over == 0,
        counts={
            "provider calls": sum(provider_calls.get(r.text, 0) for r in records),
            "extra calls": extra,
            "attempts cut by a kill": allowed,
            "keys hit": hit_keys,
            "extra beyond allowed": over,
        },
        examples=examples,
    )


def follower_without_gap(
    after: int, received: Sequence[int], log: Sequence[int], reconnects: int
) -> Invariant:
    """A subscriber resuming after its cursor saw every event of the log after ``after``, once
    each, in cursor order — ``received`` equals the log's cursors (ascending) up to its last."""
    last = received[-1] if received else after
    expected = [c for c in log if after < c <= last]
    behind = [c for c in log if c > last]
    backwards = sum(1 for a, b in itertools.pairwise(received) if b < a)
    repeats = len(received) - len(set(received))
    got = set(received)
    gaps = [c for c in expected if c not in got]
    strangers = got - set(log)
    return Invariant(
        name="a subscriber resuming after its cursor sees no gap",
        ok=not backwards and not gaps and not repeats and not strangers and not behind,
        counts={
            "events received": len(received),
            "reconnects": reconnects,
            "gaps": len(gaps),
            "repeated": repeats,
            "out of order": backwards,
            "not in the log": len(strangers),
            "not reached": len(behind),
        },
        examples=[str(c) for c in (gaps + sorted(strangers))[:5]],
    )
