"""``python -m tests.bench --against DIR``: this checkout's send path beside another's.

The question a change to the send path must answer — what does it cost against its parent? — is
hard to answer with separate runs on this machine: two runs of the same code, minutes apart,
differ by up to ±15 % in rate and in CPU per send. Here both are measured at the same moments
instead. Two services, this checkout's and ``DIR``'s (another checkout: a ``git worktree`` of the
parent commit, with its protobuf code generated), each in its own process on its own SQLite
file, are sent to by the same callers (64 by default), each caller alternating between the two:
they see the same load, and whatever else the machine does weighs on both alike.

What is compared is CPU per send: each service process's CPU time (all its threads, read from
``/proc``) over the sends it answered, and that of its two busiest threads (the event loop, then
the store's writer). Rates are not: the callers hold the two services to one pace.

The comparison runs twice, the second time with the two services started in the other order (a
process started first came out up to 2 % cheaper or dearer in a pass), and reports the median of
both passes' rounds. Two copies of one checkout measured so came out within 2 % of each other.

``DIR`` runs ``tests/bench/service.py``'s ``start_service`` of its own checkout, with
``DIR/.venv``'s interpreter when it has one; both services run on the product's event loop
(``MSGBRIDGE_BENCH_EVENT_LOOP`` as for every benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from msgbridge.v1 import gateway_pb2_grpc

from ._harness import _PRODUCT_LOOP, BenchEnv, stat_cpu_s
from .service import recipient, send_request

__all__ = ["Side", "compare_against", "report"]

_HERE = Path(__file__).resolve().parents[2]

# What each service process runs: the checkout's own bench service (any checkout since the
# benchmarks began has it), its address on stdout, then serve until terminated.
_CHILD = """
import asyncio, sys
from tests.bench.service import start_service

async def main():
    print(await start_service(sys.argv[1]), flush=True)
    await asyncio.Event().wait()

if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@dataclass(frozen=True)
class Side:
    """One of the two services: its checkout and a label for the report."""

    label: str
    checkout: Path

    def interpreter(self) -> str:
        own = self.checkout / ".venv" / "bin" / "python"
        return str(own) if own.exists() else sys.executable


@dataclass(frozen=True)
class _Round:
    """One round of one pass: per side, sends answered and CPU µs per send (the process, its
    busiest thread, its second busiest)."""

    sends: dict[str, int]
    cpu_us: dict[str, tuple[float, float, float]]


def _thread_cpu_s(pid: int) -> dict[str, float]:
    """Each thread's CPU seconds (user + system) so far, by thread id."""
    seconds: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            seconds[tid] = stat_cpu_s(f"/proc/{pid}/task/{tid}/stat")
    return seconds


async def _start(side: Side, provider_url: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        side.interpreter(), "-c", _CHILD, provider_url, _PRODUCT_LOOP,
        cwd=side.checkout, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    if not line.strip():
        raise RuntimeError(f"the service of {side.checkout} did not start")
    return process, line.decode().strip()


async def _pass(
    env: BenchEnv, sides: tuple[Side, Side], *, callers: int, rounds: int, seconds: float
) -> list[_Round]:
    """Start both services (in ``sides``' order), warm them up, then measure ``rounds``."""
    started = [await _start(side, env.fake_url) for side in sides]
    requests = itertools.cycle([send_request(recipient(i)) for i in range(1_000)])
    labels = [side.label for side in sides]
    try:
        channels = [grpc.aio.insecure_channel(address) for _, address in started]
        stubs = [gateway_pb2_grpc.GatewayStub(channel) for channel in channels]
        sends = dict.fromkeys(labels, 0)

        async def caller(first: int, until: float) -> None:
            turn = first
            while time.monotonic() < until:
                await stubs[turn].SendMessage(next(requests))
                sends[labels[turn]] += 1
                turn = 1 - turn

        async def load(duration: float) -> None:
            until = time.monotonic() + duration
            await asyncio.gather(*(caller(n % 2, until) for n in range(callers)))

        await load(2.0)  # connections, caches and the stores' first pages
        measured: list[_Round] = []
        for _ in range(rounds):
            before = [_thread_cpu_s(process.pid) for process, _ in started]
            sends.update(dict.fromkeys(labels, 0))
            await load(seconds)
            after = [_thread_cpu_s(process.pid) for process, _ in started]
            cpu: dict[str, tuple[float, float, float]] = {}
            for label, then, now in zip(labels, before, after, strict=True):
                spent = sorted((now[t] - then.get(t, 0.0) for t in now), reverse=True)
                per_send = [s * 1_000_000 / max(sends[label], 1) for s in spent]
                cpu[label] = (sum(per_send), per_send[0], per_send[1] if len(spent) > 1 else 0.0)
            measured.append(_Round(sends=dict(sends), cpu_us=cpu))
        for channel in channels:
            await channel.close()
        return measured
    finally:
        for process, _ in started:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)


async def compare_against(
    other: Path, *, callers: int = 64, rounds: int = 5, seconds: float = 6.0
) -> dict[str, Any]:
    """Measure this checkout (``this``) against the checkout ``other`` (an absolute path), in
    two passes of ``rounds`` rounds of ``seconds`` each, the services started in one order,
    then in the other."""
    this, that = Side("this", _HERE), Side("other", other)
    env = BenchEnv()
    await env.start()
    try:
        passes = [
            await _pass(env, sides, callers=callers, rounds=rounds, seconds=seconds)
            for sides in ((this, that), (that, this))
        ]
    finally:
        await env.aclose()
    rows = [r for one_pass in passes for r in one_pass]
    ratios = [r.cpu_us["this"][0] / r.cpu_us["other"][0] for r in rows]

    def median(label: str, index: int) -> float:
        return round(statistics.median(r.cpu_us[label][index] for r in rows), 1)

    return {
        "other": str(that.checkout),
        "event_loop": _PRODUCT_LOOP,
        "callers": callers,
        "rounds": [
            {"sends": r.sends, "cpu_us": {k: [round(x, 1) for x in v] for k, v in r.cpu_us.items()}}
            for r in rows
        ],
        "cpu_us_per_send": {label: median(label, 0) for label in ("this", "other")},
        "busiest_thread_us": {label: median(label, 1) for label in ("this", "other")},
        "second_thread_us": {label: median(label, 2) for label in ("this", "other")},
        "ratios": [round(x, 3) for x in ratios],
        "ratio": round(statistics.median(ratios), 3),
    }


def report(compared: dict[str, Any]) -> str:
    """The comparison as lines of text."""
    lines = [
        f"SendMessage (full path), {compared['callers']} callers alternating between this "
        f"checkout and {compared['other']} ({compared['event_loop']}):",
        "  round   this: sends  CPU µs per send (loop, 2nd)   other: sends  CPU µs per send "
        "(loop, 2nd)",
    ]
    for number, row in enumerate(compared["rounds"], 1):
        this, other = (
            f"{row['sends'][side]:>11}  {cpu[0]:>6.0f} ({cpu[1]:.0f}, {cpu[2]:.0f})"
            for side, cpu in (("this", row["cpu_us"]["this"]), ("other", row["cpu_us"]["other"]))
        )
        lines.append(f"  {number:>5}   {this:<40}{other}")
    cpu, loop, second = (
        compared["cpu_us_per_send"],
        compared["busiest_thread_us"],
        compared["second_thread_us"],
    )
    lines.append(
        f"  medians: this {cpu['this']:.0f} µs per send (loop {loop['this']:.0f}, 2nd "
        f"{second['this']:.0f}), other {cpu['other']:.0f} (loop {loop['other']:.0f}, 2nd "
        f"{second['other']:.0f})"
    )
    lines.append(
        f"  this / other, CPU per send: {compared['ratio']:.3f} (rounds: "
        + " ".join(f"{x:.3f}" for x in compared["ratios"])
        + ")"
    )
    return "\n".join(lines)
