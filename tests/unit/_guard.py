"""Running a piece of work that once hung in a child process, killed after a generous timeout.

A catastrophic regular expression holds the interpreter and cannot be interrupted from a thread,
so a test that guards against one runs the work in a child process: on fixed code it takes
milliseconds, on broken code the test fails after ``timeout`` seconds instead of hanging the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

__all__ = ["run_guarded"]

_ROOT = Path(__file__).resolve().parents[2]


def run_guarded(source: str, timeout: float = 30.0) -> str:
    """Run Python ``source`` from the repository root; its stdout. Fails the test on a timeout.

    The source may import the engine and the test helpers beside this module.
    """
    path = os.pathsep.join(str(p) for p in (_ROOT, _ROOT / "tests" / "unit"))
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source)],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PYTHONPATH": path},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the work did not finish within {timeout:g} s (it takes milliseconds)")
    assert done.returncode == 0, done.stderr
    return done.stdout
