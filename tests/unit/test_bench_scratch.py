"""A bench run keeps its temporary files in one scratch directory, removed when it ends
(tests/bench/_harness.py, BenchEnv): the stores and keys of its services, in this process and in
the processes it starts."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from tests.bench._harness import BenchEnv


async def test_a_runs_temporary_files_go_and_go_away_with_it() -> None:
    before = tempfile.gettempdir()
    env = BenchEnv()
    await env.start()
    try:
        mine = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
        scratch = mine.parent
        assert scratch != Path(before) and scratch.name.startswith("msgbridge-bench-run-")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import tempfile; print(tempfile.mkdtemp(prefix='msgbridge-bench-'))",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await child.communicate()
        theirs = Path(out.decode().strip())
        assert theirs.parent == scratch and await asyncio.to_thread(theirs.is_dir)
    finally:
        await env.aclose()
    assert not await asyncio.to_thread(scratch.exists)
    assert tempfile.gettempdir() == before
    assert os.environ.get("TMPDIR") != str(scratch)
