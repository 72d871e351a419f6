"""The soak: steady load for minutes with subscribers connecting and leaving; memory must level off.

The same processes as the reliability run (two replicas on PostgreSQL, a sidecar each, the fake
provider keeping only its last requests), nothing killed. Webhooks and keyed sends at a steady
rate; two subscribers of a durable consumer and two cursor followers that leave after a few
batches and come back (to the other replica, half the time), and short-lived followers that join
at the current position every half second and leave a few seconds later.

Each process's resident memory (``VmRSS``) is read at the start, at the end of the warm-up (a
quarter of the run, at most a minute) and at the end; the growth after the warm-up of every
msgbridge process (replicas and sidecars) must stay under 20 MB. Every webhook must also have
reached the durable consumer.
"""

from __future__ import annotations

import asyncio
import collections
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._cluster import Cluster
from ._database import fresh_database
from ._sends import KeyedSender
from ._subscribers import ConsumerSubscriber, CursorFollower
from ._suite import REPLICA_SETTINGS
from ._waiting import eventually
from ._webhooks import WebhookSender

__all__ = ["GROWTH_LIMIT_BYTES", "SoakConfig", "SoakReport", "run_soak"]

GROWTH_LIMIT_BYTES = 20 * 1024 * 1024
_MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SoakConfig:
    minutes: float = 5.0
    seed: int | None = None
    webhooks_per_s: float = 40.0
    sends_per_s: float = 10.0

    @property
    def seconds(self) -> float:
        return self.minutes * 60.0

    @property
    def warmup_s(self) -> float:
        return min(60.0, self.seconds / 4)


@dataclass(eq=False, kw_only=True)
class SoakReport:
    config: SoakConfig
    # Process → RSS in bytes at "start", "warm" and "end" (None: the process was not running).
    memory: dict[str, dict[str, int | None]] = field(default_factory=dict)
    measured: set[str] = field(default_factory=set)  # the processes the bound applies to
    notes: list[str] = field(default_factory=list)
    delivered_ok: bool = False

    def growth(self, name: str) -> int | None:
        warm, end = self.memory[name].get("warm"), self.memory[name].get("end")
        return None if warm is None or end is None else end - warm

    @property
    def ok(self) -> bool:
        growths = [self.growth(name) for name in self.measured]
        return (
            self.delivered_ok
            and bool(growths)
            and all(g is not None and g < GROWTH_LIMIT_BYTES for g in growths)
        )

    def lines(self) -> list[str]:
        def mb(value: int | None) -> str:
            return "—" if value is None else f"{value / _MB:.1f} MB"

        out = [
            f"soak: {self.config.minutes:g} min, warm-up {self.config.warmup_s:.0f} s",
            *self.notes,
            f"{'process':<16}{'start':>10}{'warm':>10}{'end':>10}{'growth':>10}",
        ]
        for name, sample in self.memory.items():
            growth = self.growth(name)
            mark = ""
            if name in self.measured:
                ok = growth is not None and growth < GROWTH_LIMIT_BYTES
                mark = "  [PASS]" if ok else "  [FAIL]"
            else:
                mark = "  (harness, not bounded)"
            out.append(
                f"{name:<16}{mb(sample.get('start')):>10}{mb(sample.get('warm')):>10}"
                f"{mb(sample.get('end')):>10}{mb(growth):>10}{mark}"
            )
        out.append(
            f"bound: growth after warm-up < {GROWTH_LIMIT_BYTES // _MB} MB per msgbridge process"
        )
        out.append(f"result: {'PASS' if self.ok else 'FAIL'}")
        return out


async def run_soak(config: SoakConfig, *, say: Callable[[str], None] = print) -> SoakReport:
    seed = config.seed if config.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    report = SoakReport(config=config)
    with tempfile.TemporaryDirectory(prefix="msgbridge-soak-") as tmp:
        async with fresh_database() as url:
            cluster = await Cluster.start(
                Path(tmp), url, replica_extra=REPLICA_SETTINGS, provider_max_recorded=500
            )
            try:
                await _soak(cluster, config, rng, report, say)
            finally:
                await cluster.aclose()
    return report


def _sample(cluster: Cluster, report: SoakReport, when: str) -> None:
    for process in cluster.processes:
        report.memory.setdefault(process.name, {})[when] = process.rss()


async def _soak(
    cluster: Cluster,
    config: SoakConfig,
    rng: random.Random,
    report: SoakReport,
    say: Callable[[str], None],
) -> None:
    await cluster.install()
    report.measured = {p.name for p in (*cluster.replicas, *cluster.sidecars)}
    _sample(cluster, report, "start")
    run_id = uuid.uuid4().hex[:8]
    deliveries: collections.Counter[str] = collections.Counter()
    subscribers = [
        ConsumerSubscriber(
            name=f"consumer-{i}",
            cluster=cluster,
            home=i,
            consumer="soak",
            deliveries=deliveries,
            leave_after=(1, 30),
            rng=random.Random(rng.random()),
        )
        for i in range(2)
    ] + [
        CursorFollower(
            name=f"follower-{i}",
            cluster=cluster,
            home=i,
            leave_after=(1, 30),
            rng=random.Random(rng.random()),
        )
        for i in range(2)
    ]
    for subscriber in subscribers:
        subscriber.start()
    webhooks = WebhookSender(
        urls=lambda: [s.url for s in cluster.sidecars],
        path=cluster.webhook_path,
        count=int(config.webhooks_per_s * config.seconds),
        run_id=run_id,
        rate_per_s=config.webhooks_per_s,
        rng=random.Random(rng.random()),
    )
    sender = KeyedSender(
        cluster=cluster,
        count=int(config.sends_per_s * config.seconds),
        run_id=run_id,
        rate_per_s=config.sends_per_s,
        rng=random.Random(rng.random()),
    )
    done = asyncio.Event()
    visitors = 0
    visits: set[asyncio.Task[None]] = set()

    async def churn() -> None:
        nonlocal visitors
        follower = subscribers[-1]
        assert isinstance(follower, CursorFollower)
        while not done.is_set():
            visitor = CursorFollower(
                name="visitor",
                cluster=cluster,
                home=visitors,
                after=follower.position,
                rng=random.Random(rng.random()),
            )
            visitor.start()
            visitors += 1
            await asyncio.sleep(0.5)

            async def leave(v: CursorFollower = visitor) -> None:
                await asyncio.sleep(rng.uniform(1.0, 4.0))
                await v.stop()

            task = asyncio.create_task(leave())
            visits.add(task)
            task.add_done_callback(visits.discard)

    async def warm() -> None:
        await asyncio.sleep(config.warmup_s)
        _sample(cluster, report, "warm")
        say(f"warm-up over after {config.warmup_s:.0f} s")

    started = time.monotonic()
    churning = asyncio.create_task(churn())
    warming = asyncio.create_task(warm())
    try:
        await asyncio.gather(webhooks.run(), sender.run(), warming)
        acked = set(webhooks.acknowledged)
        await eventually(lambda: acked <= set(deliveries), within_s=120, every_s=0.25)
        _sample(cluster, report, "end")
    finally:
        done.set()
        await churning
        for subscriber in subscribers:
            await subscriber.stop()
        await asyncio.gather(*visits)  # the last visitors leave
    lost = acked - set(deliveries)
    report.delivered_ok = not lost and len(acked) == webhooks.count
    report.notes += [
        f"{time.monotonic() - started:.0f} s of load: {len(acked)}/{webhooks.count} webhooks "
        f"acknowledged, {len(acked) - len(lost)} delivered to the consumer ({len(lost)} lost), "
        f"{sum(r.succeeded for r in sender.records)}/{sender.count} sends",
        f"subscriber connections: {sum(s.connections for s in subscribers)} "
        f"(+{visitors} short visits)",
    ]
