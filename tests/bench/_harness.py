"""The benchmark harness: the result shape, the closed-loop load driver, and the environment that
starts (and stops) the processes a benchmark needs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import grpc

from server._event_loop import run_on
from server.config import Settings

__all__ = [
    "POSTGRES_ADMIN",
    "BenchEnv",
    "Benchmark",
    "Check",
    "Result",
    "ServerTarget",
    "collector_paused",
    "cpu_per_call_us",
    "grpc_unary_caller",
    "measure",
    "result_of",
    "serve_forever_in_child",
    "servers_cpu_s",
    "stat_cpu_s",
]

# The sample SendMessage-sized payload every baseline sends.
PAYLOAD = (
    b'{"from": "+15550001111", "to": "+15550002222", "extension": "101", '
    b'"domain": "example.org", "content": "Hello from the benchmark \\u2014 msgbridge"}'
)


class Check(TypedDict):
    """A target a benchmark judges itself (the throttle accuracy): printed and written with the
    ratio targets of ``tests.bench.__main__``."""

    what: str
    value: float
    target: float
    met: bool
    shown: str


class Result(TypedDict):
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    first_error: str | None
    checks: NotRequired[list[Check]]
    #: CPU time the servers the run started (every process but the load generator) spent per
    #: completed call, µs: steadier than a rate on a shared machine (None: not measured).
    cpu_us: NotRequired[float | None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Benchmark:
    """One measurement: ``run(env, concurrency)`` returns its :class:`Result`."""

    name: str
    concurrency: int
    run: Callable[[BenchEnv, Benchmark], Awaitable[Result]]
    count: int = 20_000
    time_cap_s: float = 4.0
    #: Stop the servers earlier benchmarks started before this one runs: a latency percentile
    #: should not measure their background work (a large WAL being checkpointed, say).
    alone: bool = False


#: The machine's PostgreSQL, where the PostgreSQL benchmarks make (and drop) their databases.
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# The processes a run started (servers, fake providers), whose CPU time is the cost of a call.
_SERVER_PIDS: set[int] = set()
#: The loop every server a benchmark starts runs on — the product and its baselines alike: the
#: product's default (server/_event_loop.py), so that a ratio compares like with like.
#: ``MSGBRIDGE_BENCH_EVENT_LOOP=asyncio`` runs them all on asyncio's own loop instead: to compare
#: a ratio with one a parent commit measured before uvloop became the default.
_PRODUCT_LOOP = os.environ.get("MSGBRIDGE_BENCH_EVENT_LOOP") or Settings().event_loop
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def servers_cpu_s() -> float | None:
    """CPU seconds (user + system) the running server processes have spent so far, read from
    ``/proc`` (None where there is none)."""
    total = 0.0
    for pid in list(_SERVER_PIDS):
        try:
            total += stat_cpu_s(f"/proc/{pid}/stat")
        except FileNotFoundError:
            _SERVER_PIDS.discard(pid)
            continue
        except OSError:
            return None
    return total


def stat_cpu_s(path: str) -> float:
    """CPU seconds (user + system) of the process or thread whose ``/proc/…/stat`` is ``path``."""
    with open(path, "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14, 15)


def cpu_per_call_us(before: float | None, after: float | None, calls: int) -> float | None:
    """µs of server CPU per call between two :func:`servers_cpu_s` readings."""
    if before is None or after is None or calls <= 0:
        return None
    return round((after - before) * 1_000_000 / calls, 1)


def _percentile_ms(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list of seconds, in milliseconds."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return round(sorted_values[rank - 1] * 1000, 3)


def result_of(
    benchmark: Benchmark,
    latencies: list[float],
    *,
    seconds: float,
    cpu_before: float | None,
    requests: int | None = None,
    done: int | None = None,
    errors: int = 0,
    first_error: str | None = None,
) -> Result:
    """A run's result: ``requests`` (default: one per latency, in seconds) answered in
    ``seconds``, its rate from ``done`` (default: ``requests``), the percentiles of
    ``latencies``, and the servers' CPU since ``cpu_before`` per request."""
    requests = len(latencies) if requests is None else requests
    done = requests if done is None else done
    latencies.sort()
    return Result(
        name=benchmark.name,
        concurrency=benchmark.concurrency,
        requests=requests,
        errors=errors,
        seconds=round(seconds, 3),
        rate=round(done / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=_percentile_ms(latencies, 0.50),
        p99_ms=_percentile_ms(latencies, 0.99),
        first_error=first_error,
        cpu_us=cpu_per_call_us(cpu_before, servers_cpu_s(), requests),
    )


async def measure(
    benchmark: Benchmark,
    call: Callable[[], Awaitable[object]],
    *,
    warmup: int | None = None,
) -> Result:
    """Run ``call`` from ``benchmark.concurrency`` callers in a closed loop until
    ``benchmark.count`` calls completed or ``benchmark.time_cap_s`` passed; failed calls count as
    errors and add no latency. A warm-up (default: 5 calls per caller) comes first, uncounted."""
    concurrency = benchmark.concurrency
    first_error: str | None = None

    async def run_callers(total: int, deadline: float, latencies: list[float] | None) -> int:
        remaining = total
        errors = 0

        async def caller() -> None:
            nonlocal remaining, errors, first_error
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter()
                try:
                    await call()
                except Exception as exc:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
                    continue
                if latencies is not None:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return errors

    warm = warmup if warmup is not None else 5 * concurrency
    await run_callers(warm, time.perf_counter() + benchmark.time_cap_s, None)
    first_error = None

    latencies: list[float] = []
    with collector_paused():
        cpu_before = servers_cpu_s()
        started = time.perf_counter()
        errors = await run_callers(benchmark.count, started + benchmark.time_cap_s, latencies)
        seconds = time.perf_counter() - started
    return result_of(
        benchmark,
        latencies,
        seconds=seconds,
        cpu_before=cpu_before,
        errors=errors,
        first_error=first_error,
    )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process's garbage collector paused while it measures (collected first), as timeit
    does: the load generator has imported the whole service and run every earlier benchmark,
    and one of its full collections stalled every request in flight. Seen in the retention
    benchmark at 1,000 webhooks a second: a stall of 70-120 ms at the same second of each run,
    with the service's loop and store idle meanwhile, which alone moved that row's p99 from
    about 10 ms to 20-97 ms. Nested, the outermost one resumes it."""
    if not gc.isenabled():
        yield
        return
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def grpc_unary_caller(
    channel: grpc.aio.Channel, method: str, payload: bytes
) -> Callable[[], Awaitable[bytes]]:
    """A call of a unary gRPC method with bytes in and out (no protos needed)."""
    stub = channel.unary_unary(method)  # no serializers: bytes pass through

    async def call() -> bytes:
        reply: bytes = await stub(payload)
        return reply

    return call


# A server started in a child process: the function receives the connection to send its address
# on, then the arguments; it runs until the process is terminated.
ServerTarget = Callable[..., None]


def serve_forever_in_child(
    conn: multiprocessing.connection.Connection,
    start: Callable[..., Awaitable[str]],
    *args: Any,
) -> None:
    """Child-process body: run ``start(*args)`` (which returns the address it serves on) in a new
    event loop (the product's: ``_PRODUCT_LOOP``), report the address on ``conn``, and serve
    until terminated."""

    async def main() -> None:
        address = await start(*args)
        conn.send(address)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        run_on(_PRODUCT_LOOP, main())


@dataclass(kw_only=True)
class BenchEnv:
    """What benchmarks share: the fake provider's URL, and servers started once in child
    processes (by name) that are stopped when the run ends.

    Everything a run puts in temporary directories — each service's data directory and SQLite
    file, secret keys, a grown store's gigabyte — goes under one scratch directory of the run
    (``tempfile``'s directory here, ``TMPDIR`` for every process started after :meth:`start`),
    removed when the run ends: before, every run left its stores behind in ``/tmp``."""

    fake_url: str = ""
    _scratch: str | None = None
    _scratch_restores: tuple[str | None, str | None] = (None, None)
    _fake: asyncio.subprocess.Process | None = None
    _recording: tuple[str, asyncio.subprocess.Process] | None = None
    _servers: dict[str, tuple[str, multiprocessing.process.BaseProcess]] = field(
        default_factory=dict
    )
    _cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self) -> None:
        """Make the run's scratch directory, then start the fake provider (keeping few
        records: it answers many thousands)."""
        self._scratch = tempfile.mkdtemp(prefix="msgbridge-bench-run-")
        self._scratch_restores = (tempfile.tempdir, os.environ.get("TMPDIR"))
        tempfile.tempdir = os.environ["TMPDIR"] = self._scratch
        self.fake_url, self._fake = await _start_fake(max_recorded=100)

    async def recording_fake(self) -> str:
        """The URL of a second fake provider, started on first use, that keeps every request
        (with its arrival time): the throttle benchmarks read the rates from it."""
        if self._recording is None:
            self._recording = await _start_fake(max_recorded=1_000_000)
        return self._recording[0]

    async def server(
        self,
        name: str,
        start: Callable[..., Awaitable[str]],
        *args: Any,
        start_timeout_s: float = 60.0,
    ) -> str:
        """The address of server ``name``, started on first use in its own (spawned) process by
        running ``start(*args)`` there (within ``start_timeout_s``: a store to load first takes
        longer)."""
        if name in self._servers:
            return self._servers[name][0]
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=False)
        process = context.Process(
            target=serve_forever_in_child, args=(child, start, *args), name=name, daemon=True
        )
        process.start()
        child.close()
        if process.pid is not None:
            _SERVER_PIDS.add(process.pid)
        ready = await asyncio.to_thread(parent.poll, start_timeout_s)
        if not ready:
            process.terminate()
            raise RuntimeError(f"server {name!r} did not start")
        address: str = parent.recv()
        self._servers[name] = (address, process)
        return address

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        self._cleanups.append(cleanup)

    async def postgres_database(self) -> str:
        """The URL of a new database on the machine's PostgreSQL, dropped when the run ends
        (after the servers that use it stopped)."""
        import asyncpg  # here: only the PostgreSQL benchmarks need it

        name = f"bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

        async def drop() -> None:
            conn = await asyncpg.connect(POSTGRES_ADMIN)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        self.add_cleanup(drop)
        return POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name

    async def stop_servers(self) -> None:
        """Stop every server started so far (they start again on next use)."""
        servers, self._servers = self._servers, {}
        for _, process in servers.values():
            await _stop(process)

    async def stop_server(self, name: str) -> None:
        """Stop server ``name``, if it runs (it starts again on next use)."""
        entry = self._servers.pop(name, None)
        if entry is not None:
            await _stop(entry[1])

    async def aclose(self) -> None:
        # Servers first: a cleanup may remove what they use (a database they are connected to).
        await self.stop_servers()
        for cleanup in reversed(self._cleanups):
            await cleanup()
        for fake in (self._fake, self._recording[1] if self._recording else None):
            if fake is not None:
                fake.terminate()
                await asyncio.wait_for(fake.wait(), 10)
        self._remove_scratch()

    def _remove_scratch(self) -> None:
        """Remove the run's scratch directory (its processes stopped) and use the temporary
        directory of before again."""
        scratch, self._scratch = self._scratch, None
        if scratch is None:
            return
        tempdir, variable = self._scratch_restores
        tempfile.tempdir = tempdir
        if variable is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = variable
        shutil.rmtree(scratch, ignore_errors=True)


async def _stop(process: multiprocessing.process.BaseProcess) -> None:
    process.terminate()
    await asyncio.to_thread(process.join, 10)
    if process.is_alive():
        process.kill()


async def _start_fake(*, max_recorded: int) -> tuple[str, asyncio.subprocess.Process]:
    """A fake provider in its own process (``python -m server.demo``): its URL and process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.demo", "--port", "0", "--max-recorded", str(max_recorded),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    _SERVER_PIDS.add(process.pid)
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    if not line.startswith(b"fake provider listening on "):
        raise RuntimeError(f"the fake provider did not start: {line!r}")
    return line.decode().rsplit(" ", 1)[1].strip(), process
