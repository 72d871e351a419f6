"""The checks of the reliability run catch what they are meant to catch."""

from __future__ import annotations

from ._invariants import (
    acknowledged_webhooks,
    delivered_to_consumer,
    follower_without_gap,
    keyed_sends_extra_calls,
    keyed_sends_reached_provider,
    one_event_per_webhook,
)
from ._sends import Attempt, SendRecord


def test_webhooks_never_acknowledged_fail_the_run() -> None:
    assert acknowledged_webhooks(["a", "b"], {"a": 1, "b": 3}).ok
    check = acknowledged_webhooks(["a", "b"], {"a": 1})
    assert not check.ok
    assert check.counts["never acknowledged"] == 1
    assert check.examples == ["b"]


def test_a_lost_or_invented_delivery_is_caught() -> None:
    assert delivered_to_consumer({"a", "b"}, {"a": 1, "b": 2}, ["a", "b"]).ok
    lost = delivered_to_consumer({"a", "b"}, {"a": 1}, ["a", "b"])
    assert not lost.ok and lost.counts["lost"] == 1
    invented = delivered_to_consumer({"a"}, {"a": 1, "x": 1}, ["a"])
    assert not invented.ok and invented.counts["invented"] == 1


def test_one_event_per_webhook_catches_lost_doubled_and_invented_events() -> None:
    posted = ["a", "b", "c"]
    assert one_event_per_webhook({"a", "b"}, posted, [(1, "a"), (2, "b"), (3, "c")]).ok
    lost = one_event_per_webhook({"a", "b"}, posted, [(1, "a")])
    assert not lost.ok and lost.counts["lost"] == 1
    doubled = one_event_per_webhook({"a"}, posted, [(1, "a"), (2, "a")])
    assert not doubled.ok and doubled.counts["doubled"] == 1
    invented = one_event_per_webhook({"a"}, posted, [(1, "a"), (2, "z")])
    assert not invented.ok and invented.counts["invented"] == 1


def _record(n: int, *attempts: Attempt, succeeded: bool = True) -> SendRecord:
    return SendRecord(key=f"k{n}", text=f"t{n}", attempts=list(attempts), succeeded=succeeded)


def _no_kill(started: float, ended: float) -> bool:
    return False


def test_every_keyed_send_must_reach_the_provider() -> None:
    ok = Attempt(replica="r", started=0, ended=1, outcome="OK")
    records = [_record(0, ok), _record(1, ok)]
    assert keyed_sends_reached_provider(records, {"t0": 1, "t1": 1}, _no_kill).ok
    assert not keyed_sends_reached_provider(records, {"t0": 1}, _no_kill).ok
    assert not keyed_sends_reached_provider(records, {"t0": 1, "t1": 1, "other": 1}, _no_kill).ok
    failed = [_record(0, ok), _record(1, succeeded=False)]
    assert not keyed_sends_reached_provider(failed, {"t0": 1, "t1": 1}, _no_kill).ok


def test_a_keyed_send_may_end_outcome_unknown_only_when_a_kill_cut_it_off() -> None:
    cut = Attempt(replica="a", started=10, ended=12, outcome="UNAVAILABLE")
    unknown = _record(1, cut, succeeded=False)
    unknown.error = "DEADLINE_EXCEEDED OUTCOME_UNKNOWN: the provider may have sent it"
    records = [_record(0, Attempt(replica="b", started=0, ended=1, outcome="OK")), unknown]
    allowed = keyed_sends_reached_provider(records, {"t0": 1}, lambda s, e: s <= 11 <= e)
    assert allowed.ok and allowed.counts["outcome unknown after a kill"] == 1
    assert not keyed_sends_reached_provider(records, {"t0": 1}, _no_kill).ok


def test_an_extra_provider_call_needs_a_kill_that_cut_an_attempt() -> None:
    cut = Attempt(replica="a", started=10, ended=12, outcome="UNAVAILABLE")
    ok = Attempt(replica="b", started=13, ended=14, outcome="OK")
    kills = [("a", 11.0)]

    def hit(process: str, started: float, ended: float) -> bool:
        return any(p == process and started <= at <= ended for p, at in kills)

    records = [_record(0, cut, ok), _record(1, ok)]
    allowed = keyed_sends_extra_calls(records, {"t0": 2, "t1": 1}, hit)
    assert allowed.ok and allowed.counts["extra calls"] == 1
    assert allowed.counts["attempts cut by a kill"] == 1
    beyond = keyed_sends_extra_calls(records, {"t0": 3, "t1": 2}, hit)
    assert not beyond.ok and beyond.counts["extra beyond allowed"] == 2


def test_a_follower_with_a_gap_a_repeat_or_a_reorder_fails() -> None:
    log = [1, 2, 3, 5, 8]
    assert follower_without_gap(0, [1, 2, 3, 5, 8], log, reconnects=2).ok
    assert follower_without_gap(2, [3, 5, 8], log, reconnects=0).ok
    gap = follower_without_gap(0, [1, 2, 5, 8], log, reconnects=1)
    assert not gap.ok and gap.examples == ["3"]
    assert not follower_without_gap(0, [1, 2, 2, 3, 5, 8], log, reconnects=1).ok
    assert not follower_without_gap(0, [1, 3, 2, 5, 8], log, reconnects=1).ok
    assert not follower_without_gap(0, [1, 2, 3], log, reconnects=0).ok  # never caught up
