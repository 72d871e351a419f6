"""Runs the cases one after another and judges each against the bounds.

For each case: the prober's window and the memory peak are reset, the case runs (under its
time limit), then the window's longest call and the peak are read and a good webhook must still
become an event. One line per case; the last line is ``adversarial: N passed, M failed``.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._case import Case, CaseFailed
from ._env import Env
from ._monitor import MIB, MemorySampler, Prober

__all__ = ["Summary", "Verdict", "run_cases"]

# Far above every bound: the sampler kills the servers there, so that no case can take the
# machine down (issue/1's part header of 60,000 encoded words grew the server past 20 GB).
_GUARD_BYTES = 1200 * MIB


@dataclass(frozen=True)
class Summary:
    passed: int
    failed: int
    seconds: float
    peak_rss: int
    max_probe_ms: float

    def line(self) -> str:
        return f"adversarial: {self.passed} passed, {self.failed} failed"


@dataclass(frozen=True)
class Verdict:
    """A case's outcome: passed or not, its line, and the figures it was judged on."""

    ok: bool
    line: str
    peak_rss: int
    probe_ms: float


async def _judge(env: Env, case: Case, sampler: MemorySampler, prober: Prober) -> Verdict:
    env.judging_scoped = case.scoped
    await prober.mark()
    sampler.reset()
    status, problems = "-", []
    timed_out = False
    try:
        async with asyncio.timeout(case.timeout_s):
            status = await case.run(env)
    except CaseFailed as exc:
        problems.append(str(exc))
    except TimeoutError:
        problems.append(f"did not finish within {case.timeout_s:.0f} s")
        timed_out = True
    except Exception as exc:  # a case that broke is a failure, not the end of the run
        where = traceback.extract_tb(exc.__traceback__)[-1]
        problems.append(f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")
    window = await prober.mark()
    peak, killed = sampler.read()
    if killed:
        problems.append(f"the largest server was killed at {killed / MIB:.0f} MB resident in all")
    elif peak > case.rss_bound:
        problems.append(f"peak resident memory {peak / MIB:.0f} MB > {case.rss_bound / MIB:.0f} MB")
    if window.longest_ms > case.probe_bound_ms:
        problems.append(
            f"unrelated call took {window.longest_ms:.0f} ms > {case.probe_bound_ms:.0f} ms"
        )
    if window.failures:
        problems.append(f"{window.failures} of {window.calls} unrelated calls failed")
    # A server that stalled, or took memory (which is rarely given back), is replaced: the cases
    # after this one are judged on servers of their own, not on what this one left.
    replace = timed_out or bool(killed) or peak > case.rss_bound
    if replace:
        await env.kill_servers()
    restarted, after = await env.alive()
    if not replace:
        problems.extend(restarted)  # a server that exited by itself
    if after is not None:
        problems.append(after)
        # A server still stalled by the case (a matcher that never ends) would fail every case
        # after it: the run goes on with new servers.
        await env.kill_servers()
        _, again = await env.alive()
        if again is not None:
            problems.append(f"after a restart: {again}")
    if replace or restarted or after is not None:
        await prober.settle()
    if problems:
        return Verdict(False, f"FAIL {case.name}: {'; '.join(problems)}", peak, window.longest_ms)
    line = f"PASS {case.name}  {status}  {peak / MIB:.0f}MB  {window.longest_ms:.0f}ms"
    return Verdict(True, line, peak, window.longest_ms)


async def run_cases(cases: Sequence[Case], *, say: Callable[[str], None]) -> Summary:
    started = time.monotonic()
    passed = failed = 0
    peak_rss, max_probe = 0, 0.0
    with tempfile.TemporaryDirectory(prefix="msgbridge-adversarial-") as tmp:
        env = Env(Path(tmp))
        sampler = MemorySampler(env.server_pids, guard_bytes=_GUARD_BYTES)
        prober = Prober()
        # SIGTERM (a CI timeout, say) ends the run as Ctrl-C does: through the finally below,
        # which stops every process the run started.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await env.start()
            sampler.start()
            await prober.start(env.core.target, env.tokens.read)
            say(f"servers up in {time.monotonic() - started:.1f} s; {len(cases)} cases")
            for case in cases:
                verdict = await _judge(env, case, sampler, prober)
                passed += verdict.ok
                failed += not verdict.ok
                peak_rss = max(peak_rss, verdict.peak_rss)
                max_probe = max(max_probe, verdict.probe_ms)
                say(verdict.line)
        finally:
            await prober.stop()
            sampler.stop()
            await env.stop()
    return Summary(passed, failed, time.monotonic() - started, peak_rss, max_probe)
