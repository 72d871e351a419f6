"""Send limits and the queue, measured (issue 16's acceptance; docs/delivery.md, "Limits").

- ``throttle installation``: one installation with ten numbers, each limited to 8 msg/s, under
  an installation limit of 50 msg/s (bursts of 1); 2,000 messages sent in QUEUE mode, round-robin
  over the numbers, each to its own recipient (so that conversation order does not serialise
  them). The rates are read from the fake provider's arrival times: the total over the run
  (±3 % of 50/s), every full 5-second window after the first (±5 %), and each number's share
  (10 × 8/s exceeds 50/s, so each number gets 50/10 = 5/s: ±5 %).
- ``throttle per number``: the same ten numbers under an installation limit that does not bind
  (100/s), 1,000 messages: each number within ±5 % of 8/s over its own first-to-last.
- ``throttle cluster``: the first scenario on two replicas on one PostgreSQL database, half of
  the messages sent to each: the cluster-wide rate within ±5 % of 50/s (run and windows).
- ``queue intake``: SendMessage in QUEUE mode at 64 callers (replied QUEUED at once; delivery
  goes on in the background) beside synchronous SendMessage at 64 callers on the same server,
  the queue drained before each: the ratio of the RPC rates (``tests.bench.__main__`` TARGETS).

Each throttle scenario starts its servers alone (``Benchmark.alone``) and reports its checks as
:class:`~tests.bench._harness.Check` s: the worst deviation in percent against its tolerance.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

from ._harness import (
    BenchEnv,
    Benchmark,
    Check,
    Result,
    cpu_per_call_us,
    measure,
    servers_cpu_s,
)
from .service import bench_number, recipient, send_request, start_service

__all__ = ["THROTTLE", "deviation", "rate_over", "window_rates"]

_NUMBERS = 10
_WINDOW_S = 5.0
# Callers submitting the queued messages (their intake is far above any limit here).
_SUBMITTERS = 16
# No new arrival for this long: the rest is counted as lost (an error).
_STALL_S = 20.0


# --- the arithmetic -----------------------------------------------------------------------------


def rate_over(times: Sequence[float]) -> float:
    """Messages a second from the first arrival to the last: (n - 1) intervals over the span."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def window_rates(times: Sequence[float], width: float = _WINDOW_S) -> list[float]:
    """The rate in every full ``width``-second window after the first, counted from the first
    arrival (the first window holds the start: the queue filling, the first burst)."""
    if not times:
        return []
    start, end = times[0], times[-1]
    rates = []
    k = 1
    while start + (k + 1) * width <= end:
        low, high = start + k * width, start + (k + 1) * width
        rates.append(sum(1 for t in times if low <= t < high) / width)
        k += 1
    return rates


def deviation(rate: float, expected: float) -> float:
    """How far ``rate`` is from ``expected``, in percent (signed)."""
    return 100.0 * (rate / expected - 1.0)


def _check(what: str, deviations: Sequence[float], tolerance: float, detail: str) -> Check:
    worst = max((abs(d) for d in deviations), default=100.0)
    return Check(
        what=what,
        value=round(worst, 3),
        target=tolerance,
        met=worst <= tolerance,
        shown=f"{worst:.2f} % worst deviation (target ≤ {tolerance:g} %); {detail}",
    )


# --- a scenario ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Scenario:
    count: int
    per_number: float
    per_installation: float
    replicas: int = 1


async def _fetch_arrivals(
    session: aiohttp.ClientSession, fake_url: str, count: int
) -> dict[str, list[float]]:
    """The arrival times at the fake provider, by sending number, once ``count`` requests
    arrived (or none came for ``_STALL_S``). Polls only the requests it has not seen yet."""
    by_number: dict[str, list[float]] = defaultdict(list)
    seen, last_seq, last_progress = 0, 0, time.monotonic()
    while seen < count and time.monotonic() - last_progress < _STALL_S:
        await asyncio.sleep(1.0)
        url = f"{fake_url}/_fake/requests"
        params = {"path": "/messages", "after": str(last_seq)}
        async with session.get(url, params=params) as response:
            records: list[dict[str, Any]] = (await response.json())["requests"]
        if records:
            last_progress = time.monotonic()
        for record in records:
            by_number[record["json"]["from"]].append(record["received_at"])
            last_seq = max(last_seq, record["seq"])
            seen += 1
    for times in by_number.values():
        times.sort()
    return by_number


async def _submit(targets: Sequence[str], count: int) -> tuple[int, str | None]:
    """Send ``count`` messages in QUEUE mode, round-robin over the numbers, message ``i`` to
    ``targets[i % len(targets)]``; the errors and the first of them."""
    errors, first_error = 0, None
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [gateway_pb2_grpc.GatewayStub(c) for c in channels]
    indexes = iter(range(count))

    async def submitter() -> None:
        nonlocal errors, first_error
        for i in indexes:
            request = send_request(recipient(i), bench_number(i % _NUMBERS), queue=True)
            try:
                reply = await stubs[i % len(stubs)].SendMessage(request)
                if reply.state != gateway_pb2.Message.QUEUED:
                    raise RuntimeError(f"replied {gateway_pb2.Message.State.Name(reply.state)}")
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]

    try:
        await asyncio.gather(*(submitter() for _ in range(_SUBMITTERS)))
    finally:
        for channel in channels:
            await channel.close()
    return errors, first_error


async def _run_scenario(
    benchmark: Benchmark, scenario: _Scenario, fake_url: str, targets: Sequence[str]
) -> tuple[Result, dict[str, list[float]]]:
    """Submit the scenario's messages and read when each reached the provider."""
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{fake_url}/_fake/requests") as response:
            response.raise_for_status()
        cpu_before = servers_cpu_s()
        started = time.perf_counter()
        errors, first_error = await _submit(targets, scenario.count)
        by_number = await _fetch_arrivals(session, fake_url, scenario.count - errors)
    everything = sorted(t for times in by_number.values() for t in times)
    missing = scenario.count - errors - len(everything)
    if missing > 0:
        first_error = first_error or f"{missing} queued messages never reached the provider"
    result = Result(
        name=benchmark.name,
        concurrency=benchmark.concurrency,
        requests=len(everything),
        errors=errors + max(missing, 0),
        seconds=round(time.perf_counter() - started, 3),
        rate=round(rate_over(everything), 2),
        p50_ms=None,
        p99_ms=None,
        first_error=first_error,
        cpu_us=cpu_per_call_us(cpu_before, servers_cpu_s(), len(everything)),
    )
    return result, by_number


def _total_checks(
    prefix: str, times: Sequence[float], limit: float, run_tolerance: float
) -> list[Check]:
    total = rate_over(times)
    windows = window_rates(times)
    shown_windows = ", ".join(f"{w:.1f}" for w in windows)
    return [
        _check(
            f"{prefix}: rate over the run",
            [deviation(total, limit)],
            run_tolerance,
            f"{total:.2f}/s of {limit:g}/s",
        ),
        _check(
            f"{prefix}: worst 5 s window",
            [deviation(w, limit) for w in windows],
            5.0,
            f"windows {shown_windows} /s",
        ),
    ]


def _number_check(what: str, by_number: dict[str, list[float]], expected: float) -> Check:
    rates = {number: rate_over(times) for number, times in sorted(by_number.items())}
    missing = [deviation(0.0, expected)] * (_NUMBERS - len(rates))
    shown = ", ".join(f"{r:.2f}" for r in rates.values())
    return _check(
        what,
        [deviation(r, expected) for r in rates.values()] + missing,
        5.0,
        f"per number {shown} /s of {expected:g}/s",
    )


def _report(result: Result) -> Result:
    for check in result.get("checks", []):
        print(f"    {check['what']}: {check['shown']}", file=sys.stderr, flush=True)
    return result


# --- the benchmarks -----------------------------------------------------------------------------

_INSTALLATION = _Scenario(count=2_000, per_number=8.0, per_installation=50.0)
_PER_NUMBER = _Scenario(count=1_000, per_number=8.0, per_installation=100.0)


async def _one_server(env: BenchEnv, name: str, scenario: _Scenario) -> tuple[str, str]:
    fake_url = await env.recording_fake()
    target = await env.server(
        name, start_service, fake_url, False, "", "", True,
        _NUMBERS, scenario.per_number, scenario.per_installation,
    )  # fmt: skip
    return fake_url, target


async def throttle_installation(env: BenchEnv, benchmark: Benchmark) -> Result:
    scenario = _INSTALLATION
    fake_url, target = await _one_server(env, "msgbridge service (throttle 50/s)", scenario)
    result, by_number = await _run_scenario(benchmark, scenario, fake_url, [target])
    times = sorted(t for ts in by_number.values() for t in ts)
    share = scenario.per_installation / _NUMBERS
    result["checks"] = [
        *_total_checks("throttle installation", times, scenario.per_installation, 3.0),
        _number_check("throttle number share", by_number, share),
    ]
    return _report(result)


async def throttle_per_number(env: BenchEnv, benchmark: Benchmark) -> Result:
    scenario = _PER_NUMBER
    fake_url, target = await _one_server(env, "msgbridge service (throttle 8/s)", scenario)
    result, by_number = await _run_scenario(benchmark, scenario, fake_url, [target])
    result["checks"] = [_number_check("throttle per number", by_number, scenario.per_number)]
    return _report(result)


async def throttle_cluster(env: BenchEnv, benchmark: Benchmark) -> Result:
    """The first scenario on two replicas on one new PostgreSQL database (dropped after)."""
    scenario = _INSTALLATION
    database_url = await env.postgres_database()
    key_file = str(Path(tempfile.mkdtemp(prefix="msgbridge-bench-key-")) / "secret.key")
    fake_url = await env.recording_fake()
    limits = (_NUMBERS, scenario.per_number, scenario.per_installation)
    first = await env.server(
        "throttle replica A", start_service, fake_url, False, database_url, key_file, True, *limits
    )
    second = await env.server(
        "throttle replica B", start_service, fake_url, False, database_url, key_file, False, *limits
    )
    result, by_number = await _run_scenario(benchmark, scenario, fake_url, [first, second])
    times = sorted(t for ts in by_number.values() for t in ts)
    result["checks"] = _total_checks("throttle cluster", times, scenario.per_installation, 5.0)
    return _report(result)


# --- intake -------------------------------------------------------------------------------------

_INTAKE_SERVER = "msgbridge service (intake)"


async def _drain(stub: gateway_pb2_grpc.GatewayStub, timeout_s: float = 120.0) -> None:
    """Wait until no message is QUEUED or SENDING: the background delivery of an earlier
    measurement must not slow the next one."""
    waiting = [gateway_pb2.Message.QUEUED, gateway_pb2.Message.SENDING]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = await stub.ListMessages(
            gateway_pb2.ListMessagesRequest(org_id="bench", states=waiting, page_size=1)
        )
        if not listed.messages:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the queue did not drain in {timeout_s:g} s")


async def _intake(env: BenchEnv, benchmark: Benchmark, *, queue: bool) -> Result:
    target = await env.server(_INTAKE_SERVER, start_service, env.fake_url)
    requests = itertools.cycle([send_request(recipient(i), queue=queue) for i in range(1_000)])
    async with grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        await _drain(stub)

        async def call() -> object:
            return await stub.SendMessage(next(requests))

        result = await measure(benchmark, call)
        await _drain(stub)
    return result


async def synchronous_intake(env: BenchEnv, benchmark: Benchmark) -> Result:
    return await _intake(env, benchmark, queue=False)


async def queue_intake(env: BenchEnv, benchmark: Benchmark) -> Result:
    return await _intake(env, benchmark, queue=True)


THROTTLE: list[Benchmark] = [
    Benchmark(name="throttle installation (10 × 8/s, 50/s)", concurrency=_SUBMITTERS,
              run=throttle_installation, alone=True),
    Benchmark(name="throttle per number (10 × 8/s, 100/s)", concurrency=_SUBMITTERS,
              run=throttle_per_number, alone=True),
    Benchmark(name="throttle cluster (2 replicas, PostgreSQL)", concurrency=_SUBMITTERS,
              run=throttle_cluster, alone=True),
    # The queue's cap (send_max_queued, 10,000) bounds a QUEUE-mode measurement's count.
    Benchmark(name="synchronous send (intake)", concurrency=64, run=synchronous_intake,
              alone=True),
    Benchmark(name="queue intake (QUEUE mode)", concurrency=64, run=queue_intake, count=6_000),
]  # fmt: skip
