"""server._memory alone: glibc's arena cap is set unless the operator set MALLOC_ARENA_MAX."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from server._memory import limit_malloc_arenas

_PROBE = "from server._memory import limit_malloc_arenas; print(limit_malloc_arenas())"


def _probe(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the arena cap is glibc's; elsewhere it does nothing"
)
def test_the_cap_is_set_on_glibc_and_left_to_the_operator_when_set() -> None:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _probe(base) == "True"
    assert _probe({**base, "MALLOC_ARENA_MAX": "4"}) == "False"


def test_it_never_raises() -> None:
    assert limit_malloc_arenas() in (True, False)
