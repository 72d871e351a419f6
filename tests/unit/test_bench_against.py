"""``python -m tests.bench --against DIR`` (tests/bench/against.py): two checkouts' services
sent to by the same callers in turn, their CPU per send compared — here this checkout against
itself, briefly, on real processes and sockets."""

from __future__ import annotations

from pathlib import Path

from tests.bench.against import compare_against, report

_CHECKOUT = Path(__file__).resolve().parents[2]


async def test_a_checkout_against_itself_in_both_orders() -> None:
    compared = await compare_against(_CHECKOUT, callers=4, rounds=1, seconds=1.0)
    rounds = compared["rounds"]
    assert len(rounds) == 2  # one pass in each start order
    for row in rounds:
        # The callers alternate: each service answered half of the sends, give or take a caller.
        assert min(row["sends"].values()) > 0
        assert abs(row["sends"]["this"] - row["sends"]["other"]) <= 4
        for side in ("this", "other"):
            total, busiest, second = row["cpu_us"][side]
            assert total >= busiest >= second > 0
    assert 0.5 < compared["ratio"] < 2.0
    text = report(compared)
    assert "this / other, CPU per send" in text and str(_CHECKOUT) in text
