"""SIGKILL at random moments: a replica or a sidecar, restarted after a short pause.

One process is down at a time: the next kill comes a random while after the previous victim is
serving again. Half the kills (rounded up) hit replicas, the rest sidecars, in a random order.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from ._processes import ManagedProcess

__all__ = ["Chaos", "Kill"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Kill:
    process: str
    at: float  # time.monotonic() of the SIGKILL
    restarted_at: float


@dataclass(eq=False, kw_only=True)
class Chaos:
    replicas: list[ManagedProcess]
    sidecars: list[ManagedProcess]
    count: int
    rng: random.Random = field(default_factory=random.Random)
    gap_s: tuple[float, float] = (1.0, 4.0)
    pause_s: tuple[float, float] = (0.2, 1.5)
    kills: list[Kill] = field(default_factory=list)

    def plan(self) -> list[ManagedProcess]:
        on_replicas = (self.count + 1) // 2 if self.sidecars else self.count
        victims = [self.rng.choice(self.replicas) for _ in range(on_replicas)]
        victims += [self.rng.choice(self.sidecars) for _ in range(self.count - on_replicas)]
        self.rng.shuffle(victims)
        return victims

    async def run(self) -> None:
        for victim in self.plan():
            await asyncio.sleep(self.rng.uniform(*self.gap_s))
            at = time.monotonic()
            victim.kill()
            await victim.wait(30)
            await asyncio.sleep(self.rng.uniform(*self.pause_s))
            await victim.start()
            self.kills.append(Kill(process=victim.name, at=at, restarted_at=time.monotonic()))

    def hit(self, process: str, started: float, ended: float) -> bool:
        """Whether ``process`` was killed while a call to it (``started``–``ended``) was open."""
        return any(k.process == process and started <= k.at <= ended for k in self.kills)
