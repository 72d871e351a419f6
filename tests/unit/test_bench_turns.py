"""The bench's plan: rows a target compares are measured in turns (tests/bench/_turns.py)."""

from __future__ import annotations

from typing import Any

from tests.bench._harness import BenchEnv, Benchmark, Result
from tests.bench._turns import ROUNDS, Turns, plan


async def _never(env: BenchEnv, benchmark: Benchmark) -> Result:
    raise AssertionError("not run here")


def _row(name: str, concurrency: int = 64, *, alone: bool = False) -> Benchmark:
    return Benchmark(name=name, concurrency=concurrency, run=_never, alone=alone)


def _shape(steps: list[Benchmark | Turns]) -> list[Any]:
    return [
        [(b.name, b.concurrency) for b in step.rows]
        if isinstance(step, Turns)
        else (step.name, step.concurrency)
        for step in steps
    ]


def test_compared_rows_form_a_group_at_the_first_ones_place() -> None:
    rows = [_row("relay", 1), _row("relay"), _row("other"), _row("send", 1), _row("send")]
    compared = [(("send", 64), ("relay", 64), "rate")]
    assert _shape(plan(rows, compared)) == [
        ("relay", 1),
        [("relay", 64), ("send", 64)],
        ("other", 64),
        ("send", 1),
    ]


def test_rows_sharing_a_baseline_share_a_group() -> None:
    rows = [_row("trivial"), _row("serve"), _row("sidecar")]
    compared = [
        (("serve", 64), ("trivial", 64), "rate"),
        (("sidecar", 64), ("trivial", 64), "rate"),
    ]
    steps = plan(rows, compared)
    assert _shape(steps) == [[("trivial", 64), ("serve", 64), ("sidecar", 64)]]
    group = steps[0]
    assert isinstance(group, Turns)
    assert set(group.figures.values()) == {"rate"}


def test_alone_rows_and_rows_not_selected_are_measured_once_where_they_stand() -> None:
    rows = [_row("sync", alone=True), _row("queue"), _row("send")]
    compared = [
        (("queue", 64), ("sync", 64), "rate"),
        (("send", 64), ("relay", 64), "rate"),  # the relay is not selected
    ]
    assert _shape(plan(rows, compared)) == [("sync", 64), ("queue", 64), ("send", 64)]


async def test_rows_take_turns_and_each_reports_its_median_round_by_its_figure() -> None:
    measured: dict[str, list[float]] = {"send": [300.0, 100.0, 200.0], "raw": [3.0, 1.0, 2.0]}
    order: list[str] = []

    async def run(env: BenchEnv, benchmark: Benchmark) -> Result:
        order.append(benchmark.name)
        value = measured[benchmark.name].pop(0)
        return Result(
            name=benchmark.name,
            concurrency=benchmark.concurrency,
            requests=1,
            errors=0,
            seconds=1.0,
            rate=value,
            p50_ms=value,
            p99_ms=None,
            first_error=None,
        )

    send = Benchmark(name="send", concurrency=1, run=run)
    raw = Benchmark(name="raw", concurrency=1, run=run)
    group = Turns((send, raw), {("send", 1): "rate", ("raw", 1): "p50_ms"})
    results = await group.run(BenchEnv())
    assert ROUNDS == 3
    assert [(r["name"], r["rate"], r["p50_ms"]) for r in results] == [
        ("send", 200.0, 200.0),
        ("raw", 2.0, 2.0),
    ]
    assert order == ["send", "raw"] * ROUNDS  # in turns, not one row's rounds after another
