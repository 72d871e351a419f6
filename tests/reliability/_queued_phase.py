"""The queued-send phase of the reliability run (issue 16's acceptance; docs/delivery.md).

1. Conversations of ordered messages, each sent in QUEUE mode or synchronously to either
   replica (:class:`tests.reliability._queued.QueuedSender`), paced over the window; meanwhile
   chaos SIGKILLs replicas and the fake provider, each restarted after a pause (the provider on
   its port: while it is down, sends fail to connect and the queue retries them).
2. A bounded wait until no message is QUEUED or SENDING — a send cut off by a replica's kill
   stays SENDING until its lease expires, then another replica ends it OUTCOME_UNKNOWN.
3. The messages (``ListMessages``) and what the provider received (its record file), checked
   by :mod:`tests.reliability._queued_checks`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ._chaos import Chaos, Kill
from ._cluster import Cluster
from ._invariants import Invariant
from ._processes import ManagedProcess, RecordingProviderProcess
from ._queued import QueuedSender, provider_receipts, read_messages, waiting_count
from ._queued_checks import conversation_order, queued_sends_ended, sent_at_most_once
from ._waiting import eventually

__all__ = ["QueuedConfig", "QueuedResult", "run_queued_phase"]


@dataclass(frozen=True, kw_only=True)
class QueuedConfig:
    conversations: int = 50
    per_conversation: int = 20
    # SIGKILLs during the phase: half (rounded up) of replicas, the rest of the provider.
    kills: int = 8
    window_s: float = 40.0
    # How long, after the load, the messages may take to end.
    settle_timeout_s: float = 120.0


@dataclass(eq=False, kw_only=True)
class QueuedResult:
    invariants: list[Invariant] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def _nothing_waiting(cluster: Cluster) -> bool:
    return await waiting_count(cluster) == 0


async def _restart_exited(cluster: Cluster, result: QueuedResult) -> list[ManagedProcess]:
    """The processes that exited by themselves (no kill is due now: a crash the run must show),
    noted with their last log lines and started again."""
    exited = [p for p in cluster.processes if not p.running]
    for process in exited:
        result.notes.append(
            f"{process.name} exited on its own "
            f"(status {process.process.returncode if process.process else None}); "
            "its last log lines:\n" + "".join(list(process.log)[-30:])
        )
        await process.start()
    return exited


async def run_queued_phase(
    cluster: Cluster,
    config: QueuedConfig,
    rng: random.Random,
    run_id: str,
    say: Callable[[str], None],
) -> QueuedResult:
    provider = cluster.provider
    if not isinstance(provider, RecordingProviderProcess):
        raise TypeError("the queued phase needs the cluster started with record_sends=True")
    result = QueuedResult()
    sender = QueuedSender(
        cluster=cluster,
        conversations=config.conversations,
        per_conversation=config.per_conversation,
        run_id=run_id,
        window_s=config.window_s,
        rng=random.Random(rng.random()),
    )
    chaos = Chaos(
        replicas=list(cluster.replicas),
        sidecars=[provider],
        count=config.kills,
        rng=random.Random(rng.random()),
        gap_s=(0.5, max(1.0, 2 * config.window_s / max(1, config.kills) - 3.0)),
        pause_s=(0.5, 3.0),
    )
    say(
        f"queued sends: {config.conversations} conversations × {config.per_conversation} "
        f"messages over {config.window_s:.0f} s, {config.kills} kills of replicas and the provider"
    )
    await asyncio.gather(sender.run(), chaos.run())
    say(
        f"queued load done: {sum(1 for s in sender.sends if s.message_id)} accepted, "
        f"{len(chaos.kills)} kills; waiting for every message to end"
    )
    settled = await eventually(
        lambda: _nothing_waiting(cluster), within_s=config.settle_timeout_s, every_s=1.0
    )
    if not settled:
        result.notes.append(
            f"messages still QUEUED or SENDING {config.settle_timeout_s:.0f} s after the load"
        )
    exited = await _restart_exited(cluster, result)
    messages = await read_messages(cluster)
    exited += await _restart_exited(cluster, result)  # one that died while the list was read
    receipts = provider_receipts(provider.record)
    keys = {s.key for s in sender.sends}
    phase = [m for m in messages if m.key in keys]
    result.kills = chaos.kills
    failures = ", ".join(f"{k} ×{v}" for k, v in sender.rpc_failures.most_common()) or "none"
    result.notes.append(f"queued send calls that failed: {failures}")
    result.invariants = [
        Invariant(
            name="no process exited but by a kill",
            ok=not exited,
            counts={"processes": len(cluster.processes), "exited on their own": len(exited)},
            examples=[p.name for p in exited],
        ),
        queued_sends_ended(sender.sends, messages),
        sent_at_most_once(phase, messages, receipts),
        conversation_order(phase, receipts),
    ]
    return result
