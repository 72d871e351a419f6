"""The queued-send phase's callers and what they and the gateway recorded.

Conversations: ``conversations`` recipients, each sent ``per_conversation`` messages in order
from the one number — message ``n + 1`` only once message ``n`` was answered — paced over the
window. Each message is sent in QUEUE mode or synchronously (WAIT) at random, to a replica picked
at random, with an idempotency key of its own and the key in its metadata (so that the message
list says which send each record is). An attempt that fails for a reason that may pass (its
replica died, a deadline, a full queue) is made again with the key, on the other replica; an
outcome the service stored for the key (OUTCOME_UNKNOWN…) or any other error ends it.

After the load, :func:`read_messages` reads every message of the organisation
(``ListMessages``), and :func:`provider_receipts` what the provider received, in order.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from msgbridge.v1 import gateway_pb2

from ._cluster import FROM_NUMBER, ORG, Cluster
from ._processes import ReplicaProcess
from ._queued_checks import MessageView
from ._recording_provider import read_records
from ._sends import FINAL_REASONS, RETRYABLE, reason_and_delay

__all__ = [
    "QueuedSend",
    "QueuedSender",
    "provider_receipts",
    "read_messages",
    "recipient",
    "waiting_count",
]

_QUEUE = gateway_pb2.SendOptions(mode=gateway_pb2.SendOptions.QUEUE)
_WAIT = gateway_pb2.SendOptions(mode=gateway_pb2.SendOptions.WAIT)
_WAITING = [gateway_pb2.Message.QUEUED, gateway_pb2.Message.SENDING]


def recipient(conversation: int) -> str:
    return f"+1555200{conversation:04d}"


@dataclass(eq=False, kw_only=True, slots=True)
class QueuedSend:
    key: str
    conversation: int
    n: int
    queue: bool  # QUEUE mode, else WAIT
    message_id: str = ""  # from the reply: the message was accepted
    replied: str = ""  # the reply's state, or the error that ended the send ("CODE REASON")
    calls: int = 0
    # Asked to cancel it after a QUEUED reply: "CANCELLED" when the gateway did, else the error.
    cancel: str = ""


@dataclass(eq=False, kw_only=True)
class QueuedSender:
    cluster: Cluster
    conversations: int
    per_conversation: int
    run_id: str
    window_s: float
    queue_share: float = 0.5
    # Of the messages replied QUEUED, the share the caller then cancels (CancelMessage).
    cancel_share: float = 0.05
    call_timeout_s: float = 10.0
    give_up_after_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    sends: list[QueuedSend] = field(default_factory=list)
    rpc_failures: collections.Counter[str] = field(default_factory=collections.Counter)

    async def run(self) -> None:
        """Send every conversation's messages in order; return once each send was answered."""
        self.sends = [
            QueuedSend(
                key=f"q-{self.run_id}-{c}-{n}",
                conversation=c,
                n=n,
                queue=self.rng.random() < self.queue_share,
            )
            for c in range(self.conversations)
            for n in range(self.per_conversation)
        ]
        by_conversation: dict[int, list[QueuedSend]] = collections.defaultdict(list)
        for send in self.sends:
            by_conversation[send.conversation].append(send)
        rngs = [random.Random(self.rng.random()) for _ in by_conversation]
        await asyncio.gather(
            *(self._conversation(s, r) for s, r in zip(by_conversation.values(), rngs, strict=True))
        )

    async def _conversation(self, sends: Sequence[QueuedSend], rng: random.Random) -> None:
        gap = self.window_s / max(1, len(sends))
        start = time.monotonic() + rng.uniform(0, gap)
        for n, send in enumerate(sends):
            delay = start + n * gap * rng.uniform(0.5, 1.5) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send(send, rng)

    async def _send(self, send: QueuedSend, rng: random.Random) -> None:
        replicas = self.cluster.replicas
        index = rng.randrange(len(replicas))
        request = gateway_pb2.SendMessageRequest(
            org_id=ORG,
            to=recipient(send.conversation),
            text=f"queued {self.run_id} c{send.conversation} #{send.n}",
            idempotency_key=send.key,
            metadata={"key": send.key},
            options=_QUEUE if send.queue else _WAIT,
        )
        setattr(request, "from", FROM_NUMBER)
        first = time.monotonic()
        while True:
            send.calls += 1
            try:
                reply = await self.cluster.stub(replicas[index]).SendMessage(
                    request, timeout=self.call_timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                reason, delay = reason_and_delay(exc)
                outcome = exc.code().name + (f" {reason}" if reason else "")
                self.rpc_failures[outcome] += 1
                final = exc.code() not in RETRYABLE or reason in FINAL_REASONS
                if final or time.monotonic() - first > self.give_up_after_s:
                    send.replied = outcome
                    return
                index = (index + 1) % len(replicas)
                pause = delay if delay is not None else 0.2
                await asyncio.sleep(min(pause, 2.0) * (0.5 + rng.random()))
                continue
            send.message_id = reply.message_id
            send.replied = gateway_pb2.Message.State.Name(reply.state)
            if send.replied == "QUEUED" and rng.random() < self.cancel_share:
                await self._cancel(send, rng)
            return

    async def _cancel(self, send: QueuedSend, rng: random.Random) -> None:
        """Cancel the message (it may have left the queue already: MESSAGE_NOT_CANCELLABLE)."""
        replica = rng.choice(self.cluster.replicas)
        try:
            cancelled = await self.cluster.stub(replica).CancelMessage(
                gateway_pb2.CancelMessageRequest(message_id=send.message_id),
                timeout=self.call_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            reason, _ = reason_and_delay(exc)
            send.cancel = exc.code().name + (f" {reason}" if reason else "")
            return
        send.cancel = gateway_pb2.Message.State.Name(cancelled.state)


async def waiting_count(cluster: Cluster) -> int | None:
    """How many of the organisation's messages are QUEUED or SENDING (a page's worth at most);
    None when neither replica answers."""
    for replica in cluster.replicas:
        try:
            page = await cluster.stub(replica).ListMessages(
                gateway_pb2.ListMessagesRequest(org_id=ORG, states=_WAITING, page_size=1000),
                timeout=30,
            )
        except grpc.aio.AioRpcError:
            continue
        return len(page.messages)
    return None


async def read_messages(cluster: Cluster) -> list[MessageView]:
    """Every message of the organisation (the run's phases are over: the list holds still), from
    the first replica that answers (they share one store); the last replica's error when none
    does."""
    for replica in cluster.replicas:
        try:
            return await _read_messages_from(cluster, replica)
        except grpc.aio.AioRpcError:
            if replica is cluster.replicas[-1]:
                raise
    raise AssertionError("a cluster has at least one replica")


async def _read_messages_from(cluster: Cluster, replica: ReplicaProcess) -> list[MessageView]:
    stub = cluster.stub(replica)
    views: list[MessageView] = []
    token = ""
    while True:
        page = await stub.ListMessages(
            gateway_pb2.ListMessagesRequest(org_id=ORG, page_size=1000, page_token=token),
            timeout=60,
        )
        views.extend(_view(m) for m in page.messages)
        token = page.next_page_token
        if not token:
            return views


def _view(message: gateway_pb2.Message) -> MessageView:
    return MessageView(
        id=message.message_id,
        key=message.metadata.get("key", ""),
        to=message.to,
        state=gateway_pb2.Message.State.Name(message.state),
        created_ns=message.created_at.ToNanoseconds(),
        error=message.error,
        attempt_reasons=tuple(a.reason for a in message.attempt_log),
    )


def provider_receipts(record: Path) -> list[str]:
    """Our ids of the messages the provider received (``ref`` in each send's body), in order of
    receipt, one per request."""
    ids = []
    for entry in read_records(record):
        try:
            body = json.loads(entry.get("body", ""))
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get("ref"), str):
            ids.append(body["ref"])
    return ids
