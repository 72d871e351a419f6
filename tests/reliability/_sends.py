"""A caller sending keyed messages the way a real one does: the same key until it succeeds.

Send ``n`` has the idempotency key ``rel-<run>-<n>`` and a text of its own (so the provider's
records say which send each call was). An attempt that fails with a retryable status —
UNAVAILABLE (its replica died, or the key is still in progress elsewhere), DEADLINE_EXCEEDED,
ABORTED, RESOURCE_EXHAUSTED — is made again, unchanged, on the next replica after a short pause
(the RetryInfo delay when the service gives one); an outcome the service stored as the key's
answer (PROVIDER_TIMEOUT, DEADLINE_EXCEEDED) is final, and a send still failing after ten
minutes is given up. Every attempt is kept with its replica and times, so that the check can
tell which attempts a kill of their replica cut off.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

from msgbridge.v1 import gateway_pb2

from ._cluster import FROM_NUMBER, ORG, Cluster

__all__ = [
    "FINAL_REASONS",
    "RETRYABLE",
    "Attempt",
    "KeyedSender",
    "SendRecord",
    "reason_and_delay",
    "send_text",
]

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


# Outcomes the service stores as the key's answer (the provider may have sent the message): every
# retry with the key gets them again, so a caller stops there. OUTCOME_UNKNOWN is what a message
# whose replica was killed mid-call ends with, once its lease expires (docs/delivery.md).
FINAL_REASONS = frozenset({"PROVIDER_TIMEOUT", "DEADLINE_EXCEEDED", "OUTCOME_UNKNOWN"})


def send_text(run_id: str, n: int) -> str:
    return f"reliability {run_id} send #{n}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    replica: str
    started: float  # time.monotonic()
    ended: float
    outcome: str  # "OK" or a gRPC code name, with the ErrorInfo reason when there is one


@dataclass(eq=False, kw_only=True)
class SendRecord:
    key: str
    text: str
    to: str = "+15557654321"
    attempts: list[Attempt] = field(default_factory=list)
    message_id: str = ""
    succeeded: bool = False
    error: str = ""


def reason_and_delay(error: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not isinstance(raw, bytes):
        return "", None
    reason, delay = "", None
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return reason, delay


@dataclass(eq=False, kw_only=True)
class KeyedSender:
    cluster: Cluster
    count: int
    run_id: str
    rate_per_s: float
    concurrency: int = 16
    # Messages to one recipient leave one at a time, in order (docs/delivery.md): spread over
    # this many, the sends keep up with the pace at the provider's delay.
    recipients: int = 100
    call_timeout_s: float = 30.0
    give_up_after_s: float = 600.0
    rng: random.Random = field(default_factory=random.Random)
    records: list[SendRecord] = field(default_factory=list)

    @property
    def outcomes(self) -> collections.Counter[str]:
        return collections.Counter(a.outcome for r in self.records for a in r.attempts)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Send them all; return once each succeeded, failed for good, or ``stop`` is set."""
        self.records = [
            SendRecord(
                key=f"rel-{self.run_id}-{n}",
                text=send_text(self.run_id, n),
                to=f"+1555765{n % self.recipients:04d}",
            )
            for n in range(self.count)
        ]
        queue: asyncio.Queue[SendRecord | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(queue, stop)) for _ in range(self.concurrency)]
        started = time.monotonic()
        for n, record in enumerate(self.records):
            delay = started + n / self.rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop is not None and stop.is_set():
                break
            queue.put_nowait(record)
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)

    async def _worker(
        self, queue: asyncio.Queue[SendRecord | None], stop: asyncio.Event | None
    ) -> None:
        while (record := await queue.get()) is not None:
            await self._send(record, stop)

    async def _send(self, record: SendRecord, stop: asyncio.Event | None) -> None:
        replicas = self.cluster.replicas
        index = self.rng.randrange(len(replicas))
        request = gateway_pb2.SendMessageRequest(
            org_id=ORG, to=record.to, text=record.text, idempotency_key=record.key
        )
        setattr(request, "from", FROM_NUMBER)
        while stop is None or not stop.is_set():
            replica = replicas[index]
            started = time.monotonic()
            try:
                reply = await self.cluster.stub(replica).SendMessage(
                    request, timeout=self.call_timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                reason, delay = reason_and_delay(exc)
                outcome = exc.code().name + (f" {reason}" if reason else "")
                record.attempts.append(
                    Attempt(
                        replica=replica.name,
                        started=started,
                        ended=time.monotonic(),
                        outcome=outcome,
                    )
                )
                if exc.code() not in RETRYABLE or reason in FINAL_REASONS:
                    record.error = f"{outcome}: {exc.details()}"
                    return
                if time.monotonic() - record.attempts[0].started > self.give_up_after_s:
                    record.error = f"gave up after {len(record.attempts)} attempts: {outcome}"
                    return
                index = (index + 1) % len(replicas)
                pause = delay if delay is not None else 0.2
                await asyncio.sleep(min(pause, 2.0) * (0.5 + self.rng.random()))
                continue
            record.attempts.append(
                Attempt(replica=replica.name, started=started, ended=time.monotonic(), outcome="OK")
            )
            record.succeeded = True
            record.message_id = reply.message_id
            return
