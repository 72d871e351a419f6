"""Rows that a target compares, measured in turns: A B A B A B, each row reporting its median round.

Measured one after the other, seconds apart, a ratio between two rows takes whatever this shared
machine did meanwhile: the same code's send rate over the bare relay came out at 0.43× in one run
and 0.77× in the next (docs/operations.md, "Sizing"). In turns, a slow spell falls on every row of
the group rather than on one. The grown-store pairs take the same rounds (``tests/bench/grown.py``).

Rows marked ``alone`` (latency rows, and rows that start a server tree of their own on each run)
are measured once, where they stand, as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._harness import BenchEnv, Benchmark, Result

__all__ = ["ROUNDS", "Turns", "median_round", "plan"]

#: Rounds of a group; each row reports its median round.
ROUNDS = 3

#: A row: its name and concurrency (the same name runs at several concurrencies).
Key = tuple[str, int]
#: A target's two rows and the figure it compares (``rate``, ``p50_ms``, ``p99_ms``, ``cpu_us``).
Compared = tuple[Key, Key, str]


@dataclass(frozen=True, slots=True)
class Turns:
    """Rows measured in turns, :data:`ROUNDS` rounds; each reports the round whose ``figures``
    entry (the figure its target compares) is the median of its rounds."""

    rows: tuple[Benchmark, ...]
    figures: dict[Key, str]

    async def run(self, env: BenchEnv) -> list[Result]:
        rounds: dict[Key, list[Result]] = {_key(row): [] for row in self.rows}
        for number in range(1, ROUNDS + 1):
            for row in self.rows:
                print(
                    f"… {row.name} at {row.concurrency} (round {number} of {ROUNDS})",
                    file=sys.stderr,
                    flush=True,
                )
                rounds[_key(row)].append(await row.run(env, row))
        results = []
        for row in self.rows:
            figure = self.figures[_key(row)]
            measured = rounds[_key(row)]
            shown = ", ".join(_shown(result.get(figure)) for result in measured)
            print(f"  {row.name} at {row.concurrency}: {figure} by round {shown}", file=sys.stderr)
            results.append(median_round(measured, figure))
        return results


def plan(benchmarks: Sequence[Benchmark], compared: Iterable[Compared]) -> list[Benchmark | Turns]:
    """``benchmarks`` in order, except that rows a target compares (both selected, neither
    ``alone``) form a group measured in turns, at the place of its first row. Rows that share a
    baseline share a group (the trivial handler beside both sidecars)."""
    by_key = {_key(b): b for b in benchmarks if not b.alone}
    group_of: dict[Key, int] = {}
    figures: dict[Key, str] = {}
    groups: list[set[Key]] = []
    for mine, base, figure in compared:
        if mine not in by_key or base not in by_key:
            continue
        for key in (mine, base):
            figures.setdefault(key, figure)
        joined = {group_of[k] for k in (mine, base) if k in group_of}
        members = {mine, base}.union(*(groups[g] for g in joined))
        for g in joined:
            groups[g] = set()
        groups.append(members)
        for key in members:
            group_of[key] = len(groups) - 1
    steps: list[Benchmark | Turns] = []
    placed: set[int] = set()
    for benchmark in benchmarks:
        group = group_of.get(_key(benchmark))
        if group is None:
            steps.append(benchmark)
        elif group not in placed:
            placed.add(group)
            rows = tuple(b for b in benchmarks if _key(b) in groups[group])
            steps.append(Turns(rows, {key: figures[key] for key in groups[group]}))
    return steps


def _key(benchmark: Benchmark) -> Key:
    return benchmark.name, benchmark.concurrency


def median_round(rounds: list[Result], figure: str) -> Result:
    """The round whose ``figure`` is the median of the rounds' (a missing figure sorts first)."""
    ordered = sorted(rounds, key=lambda result: _number(result.get(figure)))
    return ordered[len(ordered) // 2]


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("-inf")


def _shown(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"
