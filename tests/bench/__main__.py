"""Run the benchmarks: ``python -m tests.bench [--only TEXT]``; ``BENCH_OUT=FILE`` writes JSON.

To add a benchmark, append a :class:`Benchmark` to ``BENCHMARKS``: a name, a concurrency, and an
``async def run(env, benchmark) -> Result`` that starts what it needs through ``env`` (servers run
in their own processes, see ``tests/bench/__init__.py``) and measures with
:func:`tests.bench._harness.measure`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ._harness import BenchEnv, Benchmark, Result
from ._turns import Compared, Turns, plan
from .against import compare_against, report
from .baselines import BASELINES
from .grown import (
    GROWN,
    GROWN_SERVICE_ROWS,
    RESUME_NAMES,
    events_read_name,
    grown_name,
    listing_name,
    retention_name,
    routing_name,
)
from .inbound import INBOUND
from .media import MEDIA
from .service import METRICS_VARIABLE, NO_EXCHANGE_LOG_VARIABLE, SERVICE
from .throttle import THROTTLE
from .workers import WORKERS, workers_name

BENCHMARKS: list[Benchmark] = [*BASELINES, *SERVICE, *INBOUND, *MEDIA, *THROTTLE, *WORKERS]

# The targets the issues set, as (what, result name, baseline name, concurrency, kind, bound):
# "rate" — the service's rate over the baseline's, at least ``bound``; "p50" — the service's p50
# minus the baseline's, in ms, at most ``bound``; "cpu" — the service's CPU per call over the
# baseline's, at most ``bound``; "p99" — the service's p99 over the baseline's, at most ``bound``.
TARGETS: list[tuple[str, str, str, int, str, float]] = [
    *(
        (
            f"{name} ({store}): grown store vs empty",
            grown_name(name, store, True),
            grown_name(name, store, False),
            callers,
            "p99" if figure == "p99_ms" else "rate",
            1.5 if figure == "p99_ms" else 0.9,
        )
        for store in ("SQLite", "PostgreSQL")
        for name, callers, _, figure in GROWN_SERVICE_ROWS
    ),
    *(
        (
            f"retention purge on {store}: ingest p99 vs without",
            retention_name(store, True),
            retention_name(store, False),
            1,
            "p99",
            2.0,
        )
        for store in ("SQLite", "PostgreSQL")
    ),
    *(
        (
            f"listing 10,000 installations vs 1,000 ({store}): per installation",
            listing_name(store, 10_000),
            listing_name(store, 1_000),
            1,
            "rate",
            0.5,
        )
        for store in ("SQLite", "PostgreSQL")
    ),
    *(
        (
            f"ingest routed by number: random among 100,000 vs one ({store})",
            routing_name(store, True),
            routing_name(store, False),
            64,
            "rate",
            0.9,
        )
        for store in ("SQLite", "PostgreSQL")
    ),
    *(
        (
            f"filtered event read, 1,000,000 events vs 10,000 ({store})",
            events_read_name(store, 1_000_000),
            events_read_name(store, 10_000),
            4,
            "rate",
            0.9,
        )
        for store in ("SQLite", "PostgreSQL")
    ),
    (
        "send rate at 64 callers vs bare relay",
        "msgbridge SendMessage (full path)",
        "bare relay (grpc → aiohttp → fake)",
        64,
        "rate",
        0.70,
    ),
    (
        "ingest under serve vs trivial HTTP handler",
        "webhook ingest (msgbridge serve)",
        "trivial HTTP handler",
        64,
        "rate",
        0.15,
    ),
    (
        "ingest through a separate sidecar vs trivial HTTP handler",
        "webhook ingest (separate sidecar)",
        "trivial HTTP handler",
        64,
        "rate",
        0.25,
    ),
    (
        "send p50 added at 1 caller vs raw client request",
        "msgbridge SendMessage (full path)",
        "raw aiohttp → fake",
        1,
        "p50",
        2.0,
    ),
    (
        "QUEUE-mode intake at 64 callers vs synchronous send",
        "queue intake (QUEUE mode)",
        "synchronous send (intake)",
        64,
        "rate",
        1.5,
    ),
    (
        "MMS ingest, media fetch on vs off",
        "webhook ingest, one media item per MMS (media fetch on)",
        "webhook ingest, MMS (media fetch off)",
        64,
        "rate",
        0.9,
    ),
    (
        "--workers 2 vs 1 on PostgreSQL: send rate",
        workers_name(2),
        workers_name(1),
        64,
        "rate",
        1.3,
    ),
    (
        "--workers 2 vs 1 on PostgreSQL: CPU per send",
        workers_name(2),
        workers_name(1),
        64,
        "cpu",
        1.15,
    ),
    (
        "media served vs static file handler (100 KB)",
        "media served (sidecar, signed URL, 100 KB)",
        "static file handler (aiohttp FileResponse, 100 KB)",
        32,
        "rate",
        0.5,
    ),
]


def _latencies(result: Result) -> tuple[float | None, float | None]:
    return result["p50_ms"], result["p99_ms"]


def _table(results: Sequence[Result]) -> str:
    width = max([38, *(len(r["name"]) for r in results)])
    header = f"{'benchmark':<{width}} {'callers':>7} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
    header += f"{'requests':>9} {'errors':>6} {'cpu µs/op':>9}"
    lines = [header, "-" * len(header)]
    for r in results:
        p50, p99 = (
            f"{v:>8.3f}" if v is not None else f"{'-':>8}" for v in (r["p50_ms"], r["p99_ms"])
        )
        cpu = r.get("cpu_us")
        lines.append(
            f"{r['name']:<{width}} {r['concurrency']:>7} {r['rate']:>9.1f} {p50} {p99} "
            f"{r['requests']:>9} {r['errors']:>6} {f'{cpu:.0f}' if cpu is not None else '-':>9}"
        )
        if r["first_error"]:
            lines.append(f"    first error: {r['first_error']}")
    return "\n".join(lines)


# Absolute targets: (what, result name, field, "max" or "min", bound).
ABSOLUTE: list[tuple[str, str, str, str, float]] = [
    ("p99 POST → subscriber at 1,000/s", "POST → subscriber at 1,000/s", "p99_ms", "max", 20.0),
    (
        "p99 POST → subscriber at 1,000/s, separate sidecar",
        "POST → subscriber at 1,000/s (separate sidecar)",
        "p99_ms",
        "max",
        15.0,
    ),
    ("events/s to one subscriber", "events to one subscriber", "rate", "min", 10_000.0),
    *(
        (f"events/s resuming 1,000,000 back ({store})", name, "rate", "min", 20_000.0)
        for store, name in RESUME_NAMES.items()
    ),
]


def _ratios(results: Sequence[Result]) -> list[dict[str, Any]]:
    by_key = {(r["name"], r["concurrency"]): r for r in results}
    by_name = {r["name"]: r for r in results}
    out: list[dict[str, Any]] = [dict(c) for r in results for c in r.get("checks", [])]
    for what, name, key, kind, bound in ABSOLUTE:
        result = by_name.get(name)
        if result is None or result[key] is None:  # type: ignore[literal-required]
            continue
        value = float(result[key])  # type: ignore[literal-required]
        met = value <= bound if kind == "max" else value >= bound
        sign = "≤" if kind == "max" else "≥"
        out.append(
            {
                "what": what,
                "value": value,
                "target": bound,
                "met": met,
                "shown": f"{value:,.1f} (target {sign} {bound:,.0f})",
            }
        )
    for what, name, baseline, concurrency, kind, bound in TARGETS:
        mine, base = by_key.get((name, concurrency)), by_key.get((baseline, concurrency))
        if mine is None or base is None:
            continue
        if kind == "rate":
            value = mine["rate"] / base["rate"] if base["rate"] else 0.0
            met = value >= bound
            shown = f"{value:.2f}× (target ≥ {bound:.2f}×)"
        elif kind == "cpu":
            cpu, base_cpu = mine.get("cpu_us"), base.get("cpu_us")
            if not cpu or not base_cpu:
                continue
            value = cpu / base_cpu
            met = value <= bound
            shown = f"{value:.2f}× (target ≤ {bound:.2f}×)"
        elif kind == "p99":
            p99, base_p99 = mine["p99_ms"], base["p99_ms"]
            if not p99 or not base_p99:
                continue
            value = p99 / base_p99
            met = value <= bound
            shown = f"{value:.2f}× (target ≤ {bound:.2f}×)"
        else:
            value = (mine["p50_ms"] or 0.0) - (base["p50_ms"] or 0.0)
            met = value <= bound
            shown = f"{value:+.3f} ms (target ≤ {bound:.1f} ms)"
        out.append(
            {"what": what, "value": round(value, 4), "target": bound, "met": met, "shown": shown}
        )
    return out


def _machine() -> dict[str, Any]:
    versions = {name: metadata.version(name) for name in ("aiohttp", "grpcio", "protobuf")}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": versions,
    }


# The figure each kind of target compares: its rows are measured in turns by it (_turns.py).
_FIGURES = {"rate": "rate", "p50": "p50_ms", "p99": "p99_ms", "cpu": "cpu_us"}


def _compared() -> list[Compared]:
    return [
        ((name, concurrency), (baseline, concurrency), _FIGURES[kind])
        for _, name, baseline, concurrency, kind, _ in TARGETS
    ]


async def run(benchmarks: Sequence[Benchmark], compared: Sequence[Compared] = ()) -> list[Result]:
    """Run ``benchmarks`` in order; the rows ``compared`` pairs, in turns (``_turns.py``)."""
    env = BenchEnv()
    results: list[Result] = []
    await env.start()
    try:
        for step in plan(benchmarks, compared):
            if isinstance(step, Turns):
                results.extend(await step.run(env))
                continue
            if step.alone:
                await env.stop_servers()
            print(f"… {step.name} at {step.concurrency}", file=sys.stderr, flush=True)
            results.append(await step.run(env, step))
    finally:
        await env.aclose()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument(
        "--only", help="run only benchmarks whose name contains this text (A|B: either)"
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics from the service under test (metrics_listen), to measure "
        "their cost against a run without",
    )
    parser.add_argument(
        "--no-exchange-log",
        action="store_true",
        help="keep no provider exchanges in the service under test (exchange_log = false), to "
        "measure the log's cost against a run with it (docs/operations.md, 'Metrics', 'Cost')",
    )
    parser.add_argument(
        "--grown",
        action="store_true",
        help="run the benchmarks on a store holding history instead (make bench-grown: "
        "tests/bench/grown.py)",
    )
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="compare the CPU per send of this checkout's service with that of another "
        "checkout's (say, a git worktree of the parent commit), both sent to by the same "
        "callers in turn (tests/bench/against.py); nothing else runs",
    )
    args = parser.parse_args(argv)
    if args.against:
        return _against(args.against)
    if args.metrics:
        os.environ[METRICS_VARIABLE] = "1"
    if args.no_exchange_log:
        os.environ[NO_EXCHANGE_LOG_VARIABLE] = "1"
    wanted = None if args.only is None else args.only.split("|")
    suite = GROWN if args.grown else BENCHMARKS
    selected = [b for b in suite if wanted is None or any(w in b.name for w in wanted)]
    # The grown-store rows measure their pairs in turns themselves (tests/bench/grown.py).
    results = asyncio.run(run(selected, () if args.grown else _compared()))
    print(_table(results))
    ratios = _ratios(results)
    if ratios:
        print()
        for ratio in ratios:
            print(f"{ratio['what']:<52} {ratio['shown']}  {'met' if ratio['met'] else 'NOT met'}")
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as file:
            json.dump(
                {"machine": _machine(), "results": results, "targets": ratios}, file, indent=2
            )
            file.write("\n")
        print(f"results written to {out}", file=sys.stderr)
    return 0 if all(r["errors"] == 0 for r in results) else 1


def _against(other: str) -> int:
    compared = asyncio.run(compare_against(Path(other).resolve()))
    print(report(compared))
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as file:
            json.dump({"machine": _machine(), "against": compared}, file, indent=2)
            file.write("\n")
        print(f"results written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
