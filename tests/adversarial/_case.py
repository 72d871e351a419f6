"""A case: a name, what it does, and the bounds it is judged by.

A case's coroutine returns the status it saw (``"400"``, ``"INVALID_ARGUMENT"``, ``"exit 2"``),
having checked it; it raises :class:`CaseFailed` when what it saw is not the fixed behaviour.
The runner (:mod:`tests.adversarial._runner`) adds the checks every case shares: memory, the
unrelated call's latency, and a good webhook afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._env import Env

__all__ = ["RSS_BOUND", "Case", "CaseFailed", "expect", "expect_status"]

MIB = 1024 * 1024
#: The issue's bounds: resident memory summed over the server's processes, and the latency of an
#: unrelated gRPC call while a case runs.
RSS_BOUND = 300 * MIB
PROBE_BOUND_MS = 250.0

Run = Callable[["Env"], Awaitable[str]]


class CaseFailed(AssertionError):
    """What the case saw is not the fixed behaviour; the message says what and what was wanted."""


def expect(condition: bool, why: str) -> None:
    if not condition:
        raise CaseFailed(why)


def expect_status(seen: int | str, wanted: Collection[int | str]) -> str:
    """``seen`` as text, once it is one of ``wanted``."""
    if seen not in wanted:
        shown = " or ".join(str(w) for w in wanted)
        raise CaseFailed(f"got {seen}, expected {shown}")
    return str(seen)


@dataclass(frozen=True, kw_only=True)
class Case:
    name: str
    run: Run
    rss_bound: int = RSS_BOUND
    probe_bound_ms: float = PROBE_BOUND_MS
    timeout_s: float = 60.0
    #: Judged on the scoped-token server's memory rather than the main server's.
    scoped: bool = False


class Cases:
    """A module's cases, added with the :meth:`case` decorator or :meth:`add`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.all: list[Case] = []

    def add(
        self,
        name: str,
        run: Run,
        *,
        rss_bound: int = RSS_BOUND,
        probe_bound_ms: float = PROBE_BOUND_MS,
        timeout_s: float = 60.0,
        scoped: bool = False,
    ) -> None:
        self.all.append(
            Case(
                name=f"{self.prefix}/{name}",
                run=run,
                rss_bound=rss_bound,
                probe_bound_ms=probe_bound_ms,
                timeout_s=timeout_s,
                scoped=scoped,
            )
        )

    def case(self, name: str, *, timeout_s: float = 60.0) -> Callable[[Run], Run]:
        def register(run: Run) -> Run:
            self.add(name, run, timeout_s=timeout_s)
            return run

        return register
