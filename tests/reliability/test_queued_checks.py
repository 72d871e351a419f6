"""The queued phase's checks catch what they are meant to catch: a stuck or lost message, a
message sent twice without an unknown outcome, a conversation out of order."""

from __future__ import annotations

from ._queued import QueuedSend
from ._queued_checks import (
    MessageView,
    conversation_order,
    queued_sends_ended,
    sent_at_most_once,
)


def _send(n: int, message_id: str = "", replied: str = "QUEUED") -> QueuedSend:
    return QueuedSend(
        key=f"k{n}", conversation=0, n=n, queue=True, message_id=message_id, replied=replied
    )


def _message(
    n: int,
    state: str = "SENT",
    to: str = "+1",
    error: str = "",
    attempt_reasons: tuple[str, ...] = (),
) -> MessageView:
    return MessageView(
        id=f"m{n}",
        key=f"k{n}",
        to=to,
        state=state,
        created_ns=n,
        error=error,
        attempt_reasons=attempt_reasons,
    )


def test_a_stuck_or_lost_message_fails_the_run() -> None:
    sends = [_send(0, "m0"), _send(1, "m1")]
    assert queued_sends_ended(sends, [_message(0), _message(1, "FAILED")]).ok
    stuck = queued_sends_ended(sends, [_message(0), _message(1, "SENDING")])
    assert not stuck.ok and stuck.counts["stuck"] == 1
    lost = queued_sends_ended(sends, [_message(0)])
    assert not lost.ok and lost.counts["lost"] == 1


def test_a_confirmed_cancel_must_end_cancelled() -> None:
    cancelled = _send(0, "m0")
    cancelled.cancel = "CANCELLED"
    assert queued_sends_ended([cancelled], [_message(0, "CANCELLED")]).ok
    check = queued_sends_ended([cancelled], [_message(0, "SENT")])
    assert not check.ok and check.counts["confirmed but not CANCELLED"] == 1


def test_a_send_answered_with_an_error_is_checked_by_its_key() -> None:
    sends = [_send(0, "m0"), _send(1, replied="DEADLINE_EXCEEDED OUTCOME_UNKNOWN")]
    unknown = _message(1, "FAILED", error="OUTCOME_UNKNOWN: the provider may have sent it")
    check = queued_sends_ended(sends, [_message(0), unknown])
    assert check.ok and check.counts["ended FAILED OUTCOME_UNKNOWN"] == 1
    assert check.counts["accepted"] == 1 and check.counts["ended with an error reply"] == 1
    assert not queued_sends_ended(sends, [_message(0), _message(1, "QUEUED")]).ok


def test_twice_at_the_provider_needs_an_unknown_outcome() -> None:
    sent, unknown = _message(0), _message(1, "FAILED", attempt_reasons=("OUTCOME_UNKNOWN",))
    phase = [sent, unknown]
    assert sent_at_most_once(phase, phase, ["m0", "m1", "m1"]).ok
    twice = sent_at_most_once(phase, phase, ["m0", "m0", "m1"])
    assert not twice.ok and twice.counts["sent twice without unknown outcome"] == 1


def test_sent_unreceived_cancelled_received_and_strangers_fail_the_run() -> None:
    phase = [_message(0), _message(1, "CANCELLED")]
    assert sent_at_most_once(phase, phase, ["m0"]).ok
    assert not sent_at_most_once(phase, phase, []).ok
    assert not sent_at_most_once(phase, phase, ["m0", "m1"]).ok
    assert not sent_at_most_once(phase, phase, ["m0", "mx"]).ok


def test_a_conversation_out_of_order_is_caught_and_failures_are_ignored() -> None:
    phase = [_message(0), _message(1, "FAILED"), _message(2), _message(3, to="+2")]
    assert conversation_order(phase, ["m3", "m0", "m2", "m1"]).ok
    swapped = conversation_order(phase, ["m2", "m0", "m3"])
    assert not swapped.ok and swapped.counts["order violations"] == 1
    assert swapped.counts["conversations out of order"] == 1
    # A message received again later does not count: its first receipt does.
    assert conversation_order(phase, ["m0", "m2", "m0", "m3"]).ok
