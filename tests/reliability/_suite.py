"""The reliability run: real processes under load, SIGKILLed at random, then the invariants.

1. A database of its own; the fake provider; two replicas and a sidecar per replica.
2. Subscribers: two of one durable consumer (one per replica, acknowledging each batch) and a
   cursor follower that also leaves now and then; all reconnect to the other replica when theirs
   fails them.
3. At once, for a window sized to the kills: the provider posts the webhooks (paced over the
   window, each retried until 2xx), a caller sends the keyed messages (paced likewise, each
   retried with its key until it succeeds), and chaos SIGKILLs replicas and sidecars.
4. Once every send succeeded and every webhook was answered 2xx, wait (bounded) for the
   subscribers to have every acknowledged webhook — an event leased to a subscriber on a
   replica that was killed comes again only after its lease (30 s) — then read the log and the
   provider's records and check.
5. The queued-send phase on the same processes (:mod:`tests.reliability._queued_phase`): replicas
   and the provider SIGKILLed while ordered conversations are sent; none stuck, lost, sent twice
   or out of order; meanwhile MMS webhooks are posted too, their files fetched while the provider
   is killed.
6. The MMS (:mod:`tests.reliability._mms`): about one webhook in five of the first load, and those
   of the queued phase, are MMS with one or two files on the provider, kept in moto's S3 server
   that the replicas share. Once every acknowledged MMS is released (bounded): one event each,
   each file kept (``GetMedia`` reads back the provider's bytes) or its error, no hold left.
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

import aiohttp

from ._chaos import Chaos, Kill
from ._cluster import Cluster
from ._database import fresh_database
from ._invariants import (
    Invariant,
    acknowledged_webhooks,
    delivered_to_consumer,
    follower_without_gap,
    keyed_sends_extra_calls,
    keyed_sends_reached_provider,
    one_event_per_webhook,
)
from ._log import read_events
from ._media_files import KINDS, MmsPlan, kind_of
from ._mms import MEDIA_SETTINGS, MmsWatcher, check_mms
from ._queued_phase import QueuedConfig, run_queued_phase
from ._sends import KeyedSender
from ._subscribers import ConsumerSubscriber, CursorFollower
from ._waiting import eventually
from ._webhooks import WebhookSender

__all__ = ["REPLICA_SETTINGS", "Report", "SuiteConfig", "read_log", "run_suite"]

# Replica settings for a run (server/config.py), short so that a run ends in minutes: a provider
# call times out after 4 s (2 s was seen to pass on a machine loaded ten times over its two cores:
# a send the provider was slow to answer is not a loss); a process killed mid-call leaves its
# message SENDING for the 10 s lease,
# then another replica ends it OUTCOME_UNKNOWN; a send that could not reach the provider (killed
# in the queued phase, for a few seconds) is retried from 0.2 s, at most 1 s apart, up to 200
# times within 10 minutes — more than a provider's downtime takes.
REPLICA_SETTINGS = (
    "--provider-timeout-s", "4",
    "--send-lease-s", "10",
    "--send-retry-initial-s", "0.2",
    "--send-retry-max-s", "1",
    "--send-max-attempts", "200",
    "--send-max-age-s", "600",
)  # fmt: skip
_CONSUMER = "reliability"


@dataclass(frozen=True, kw_only=True)
class SuiteConfig:
    webhooks: int = 5000
    sends: int = 1000
    kills: int = 10
    seed: int | None = None
    # Time the load is spread over (None: about five seconds per kill, at least ten).
    window_s: float | None = None
    # How long, after the load, the subscribers may take to receive everything.
    settle_timeout_s: float = 240.0
    # How long the fake provider takes to answer a send, as real ones do: the longer, the more
    # sends a kill finds in flight.
    provider_delay_s: float = 0.3
    # The queued-send phase, after the first (None: skipped).
    queued: QueuedConfig | None = field(default_factory=QueuedConfig)
    # About one webhook in this many is an MMS (0: none, and no object store).
    mms_every: int = 5
    # MMS webhooks posted during the queued phase, while the provider is killed.
    queued_mms: int = 100
    workdir: Path | None = None

    @property
    def load_window_s(self) -> float:
        return self.window_s if self.window_s is not None else max(10.0, 5.0 * self.kills)


@dataclass(eq=False, kw_only=True)
class Report:
    config: SuiteConfig
    seed: int
    invariants: list[Invariant] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.invariants) and all(i.ok for i in self.invariants)

    def lines(self) -> list[str]:
        c = self.config
        by_process = collections.Counter(k.process for k in self.kills)
        out = [
            f"reliability: {c.webhooks} webhooks"
            + (f" (1 in {c.mms_every} MMS)" if c.mms_every > 0 else "")
            + f", {c.sends} keyed sends, {c.kills} kills "
            f"(seed {self.seed}), {self.seconds:.0f} s"
            + (
                f"; queued: {c.queued.conversations} conversations × "
                f"{c.queued.per_conversation} messages, {c.queued.kills} kills"
                if c.queued is not None
                else ""
            ),
            f"kills: {len(self.kills)} — "
            + (", ".join(f"{p} ×{n}" for p, n in sorted(by_process.items())) or "none"),
            *self.notes,
            *(i.line() for i in self.invariants),
            f"result: {'PASS' if self.ok else 'FAIL'}",
        ]
        return out


async def read_log(cluster: Cluster, replica: int = 0) -> list[tuple[int, str]]:
    """Every event in the log as (cursor, provider message id), in cursor order."""
    return [(e.cursor, e.provider_message_id) for e in await read_events(cluster, replica)]


async def slow_down_provider(cluster: Cluster, delay_s: float) -> None:
    """Script the fake provider to answer every send after ``delay_s``."""
    script = {"path": "/messages", "answers": [{"delay_s": delay_s}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{cluster.provider.url}/_fake/script", json=script) as answer,
    ):
        answer.raise_for_status()


async def provider_calls(cluster: Cluster) -> collections.Counter[str]:
    """Text → how many send requests the fake provider received with it."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{cluster.provider.url}/_fake/requests", params={"path": "/messages"}) as got,
    ):
        data = await got.json()
    return collections.Counter(
        (r.get("json") or {}).get("content", "<no content>") for r in data["requests"]
    )


async def run_suite(config: SuiteConfig, *, say: Callable[[str], None] = print) -> Report:
    seed = config.seed if config.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    report = Report(config=config, seed=seed)
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="msgbridge-reliability-") as tmp:
        workdir = config.workdir or Path(tmp)
        async with fresh_database() as url:
            mms = config.mms_every > 0
            cluster = await Cluster.start(
                workdir,
                url,
                replica_extra=(*REPLICA_SETTINGS, *(MEDIA_SETTINGS if mms else ())),
                record_sends=True,
                provider_delay_s=config.provider_delay_s,
                media_store=mms,
            )
            watcher = MmsWatcher(cluster=cluster)
            try:
                await cluster.install()
                if mms:
                    watcher.start()
                plan = MmsPlan(
                    base_url=cluster.provider.url,
                    every=config.mms_every,
                    rng=random.Random(rng.random()),
                )
                webhooks = await _run(cluster, config, rng, run_id, plan, report, say)
                senders = [webhooks]
                if config.queued is not None:
                    queued_mms = _queued_mms(cluster, config, plan, rng, run_id)
                    queued, _ = await asyncio.gather(
                        run_queued_phase(cluster, config.queued, rng, run_id, say),
                        queued_mms.run(),
                    )
                    senders.append(queued_mms)
                    report.kills += queued.kills
                    report.notes += queued.notes
                    report.invariants += queued.invariants
                if mms:
                    await _check_mms(cluster, plan, senders, watcher, report, say)
            finally:
                await watcher.stop()
                await cluster.aclose()
    report.seconds = time.monotonic() - started
    return report


def _queued_mms(
    cluster: Cluster, config: SuiteConfig, plan: MmsPlan, rng: random.Random, run_id: str
) -> WebhookSender:
    """MMS webhooks (only) paced over the queued phase's window, noted in ``plan``'s URLs."""
    window = config.queued.window_s if config.queued is not None else 10.0
    count = config.queued_mms if plan.every > 0 else 0
    only_mms = MmsPlan(
        base_url=plan.base_url, every=1, rng=random.Random(rng.random()), urls=plan.urls
    )
    return WebhookSender(
        urls=lambda: [s.url for s in cluster.sidecars],
        path=cluster.webhook_path,
        count=count,
        run_id=f"{run_id}q",
        rate_per_s=max(1.0, count / window),
        rng=random.Random(rng.random()),
        bodies=only_mms.body,
    )


async def _check_mms(
    cluster: Cluster,
    plan: MmsPlan,
    senders: list[WebhookSender],
    watcher: MmsWatcher,
    report: Report,
    say: Callable[[str], None],
) -> None:
    acknowledged_at = {p: t for s in senders for p, t in s.acknowledged_at.items()}
    invariants, notes = await check_mms(
        cluster,
        urls=plan.urls,
        acknowledged_at=acknowledged_at,
        watcher=watcher,
        kills=report.kills,
        say=say,
    )
    kinds = collections.Counter(kind_of(u) for urls in plan.urls.values() for u in urls)
    report.notes += [
        f"MMS posted: {len(plan.urls)}, files by kind: "
        + ", ".join(f"{k} ×{kinds[k]}" for k in KINDS),
        *notes,
    ]
    report.invariants += invariants


async def _run(
    cluster: Cluster,
    config: SuiteConfig,
    rng: random.Random,
    run_id: str,
    plan: MmsPlan,
    report: Report,
    say: Callable[[str], None],
) -> WebhookSender:
    say(
        f"started {', '.join(p.name for p in cluster.processes)}; "
        f"load over {config.load_window_s:.0f} s"
    )
    deliveries: collections.Counter[str] = collections.Counter()
    consumers = [
        ConsumerSubscriber(
            name=f"consumer-{i}",
            cluster=cluster,
            home=i,
            consumer=_CONSUMER,
            deliveries=deliveries,
            rng=random.Random(rng.random()),
        )
        for i in range(2)
    ]
    follower = CursorFollower(
        name="follower", cluster=cluster, leave_after=(5, 60), rng=random.Random(rng.random())
    )
    subscribers = [*consumers, follower]
    for subscriber in subscribers:
        subscriber.start()
    window = config.load_window_s
    webhooks = WebhookSender(
        urls=lambda: [s.url for s in cluster.sidecars],
        path=cluster.webhook_path,
        count=config.webhooks,
        run_id=run_id,
        rate_per_s=max(1.0, config.webhooks / window),
        rng=random.Random(rng.random()),
        bodies=plan.body,
    )
    sender = KeyedSender(
        cluster=cluster,
        count=config.sends,
        run_id=run_id,
        rate_per_s=max(1.0, config.sends / window),
        rng=random.Random(rng.random()),
    )
    chaos = Chaos(
        replicas=list(cluster.replicas),
        sidecars=list(cluster.sidecars),
        count=config.kills,
        rng=random.Random(rng.random()),
        gap_s=(0.5, max(1.0, 2 * window / max(1, config.kills) - 3.0)),
    )
    try:
        await asyncio.gather(webhooks.run(), sender.run(), chaos.run())
        say(
            f"load done: {len(webhooks.acknowledged)} webhooks acknowledged, "
            f"{sum(r.succeeded for r in sender.records)} sends succeeded, "
            f"{len(chaos.kills)} kills; waiting for the subscribers"
        )
        acked = set(webhooks.acknowledged)
        settled = await eventually(
            lambda: acked <= set(deliveries) and acked <= set(follower.provider_ids),
            within_s=config.settle_timeout_s,
            every_s=0.25,
        )
        if not settled:
            report.notes.append(
                f"the subscribers had not received everything {config.settle_timeout_s:.0f} s "
                "after the load"
            )
        await asyncio.sleep(1.0)  # anything after the last acknowledged webhook shows up too
    finally:
        for subscriber in subscribers:
            await subscriber.stop()
    log = await read_log(cluster)
    calls = await provider_calls(cluster)
    report.kills = chaos.kills
    refusals = ", ".join(f"{k} ×{v}" for k, v in webhooks.refusals.most_common()) or "none"
    outcomes = ", ".join(f"{k} ×{v}" for k, v in sender.outcomes.most_common()) or "none"
    report.notes += [
        f"webhook attempts not answered 2xx: {refusals}",
        f"send attempts: {outcomes}",
        "subscriber connections ended: "
        + "; ".join(f"{s.name} {dict(s.endings)}" for s in subscribers if s.endings),
    ]
    report.invariants = [
        acknowledged_webhooks(webhooks.posted, webhooks.acknowledged),
        delivered_to_consumer(webhooks.acknowledged, deliveries, webhooks.posted),
        one_event_per_webhook(webhooks.acknowledged, webhooks.posted, log),
        keyed_sends_reached_provider(
            sender.records,
            calls,
            lambda started, ended: any(chaos.hit(r.name, started, ended) for r in cluster.replicas),
        ),
        keyed_sends_extra_calls(sender.records, calls, chaos.hit),
        follower_without_gap(
            follower.after, follower.cursors, [c for c, _ in log], follower.reconnects
        ),
    ]
    return webhooks
