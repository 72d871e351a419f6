"""What is measured while a case runs: the servers' resident memory and an unrelated call's latency.

:class:`MemorySampler` reads ``VmRSS`` of the server processes (and their children) every
30 ms in a thread and keeps the peak of the sum; past a guard far above every bound it SIGKILLs
the largest, so that a case that makes the server grow without limit cannot take the machine down
(the suite then restarts the server for the cases after it). :class:`Prober` drives the
separate prober process (:mod:`tests.adversarial._prober`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.reliability._processes import ROOT, rss_bytes

__all__ = ["MemorySampler", "ProbeWindow", "Prober", "descendants"]

_SAMPLE_S = 0.03
MIB = 1024 * 1024


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from ``/proc/PID/task/*/children``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except (OSError, ValueError):
                continue
    return found


class MemorySampler:
    """The peak, since :meth:`reset`, of the resident memory summed over the server processes.

    ``roots`` gives the current root pids (servers are restarted, so it is asked each time).
    """

    def __init__(self, roots: Callable[[], Iterable[int]], *, guard_bytes: int) -> None:
        self._roots = roots
        self._guard = guard_bytes
        self._lock = threading.Lock()
        self._peak = 0
        self._killed_at = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def sample(self) -> int:
        sizes = {pid: rss_bytes(pid) or 0 for root in self._roots() for pid in descendants(root)}
        total = sum(sizes.values())
        if total > self._guard:
            with contextlib.suppress(ProcessLookupError):
                os.kill(max(sizes, key=sizes.__getitem__), signal.SIGKILL)  # the one that grew
            with self._lock:
                self._killed_at = max(self._killed_at, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_S):
            total = self.sample()
            with self._lock:
                self._peak = max(self._peak, total)

    def reset(self) -> None:
        with self._lock:
            self._peak = 0
            self._killed_at = 0

    def read(self) -> tuple[int, int]:
        """The peak since the last reset, and the sum at which the guard killed (0: it did not)."""
        total = self.sample()
        with self._lock:
            self._peak = max(self._peak, total)
            return self._peak, self._killed_at


@dataclass(frozen=True, slots=True)
class ProbeWindow:
    """The prober's figures for one window: the longest call, calls made, calls failed."""

    longest_ms: float
    calls: int
    failures: int


class Prober:
    """The prober process: :meth:`mark` ends a window and returns its figures."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, target: str, token: str) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.adversarial._prober", target, token,
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def mark(self) -> ProbeWindow:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(b"mark\n")
        await process.stdin.drain()
        async with asyncio.timeout(60):
            line = (await process.stdout.readline()).decode()
        if not line:
            raise RuntimeError("the prober exited")
        longest, calls, failures = line.split()
        return ProbeWindow(float(longest), int(calls), int(failures))

    async def settle(self, limit_s: float = 15.0) -> None:
        """Wait until the prober's calls succeed again (after a server was restarted, its
        channel reconnects), so that the next case's window starts clean."""
        loop = asyncio.get_running_loop()
        until = loop.time() + limit_s
        while loop.time() < until:
            await asyncio.sleep(0.2)
            window = await self.mark()
            if window.calls and not window.failures:
                return

    async def stop(self) -> None:
        if self._process is None:
            return
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
