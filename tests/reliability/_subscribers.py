"""Subscribers as a telephony core runs them: they reconnect to another replica when theirs dies.

- :class:`ConsumerSubscriber`: one subscriber of a durable consumer (``StreamEvents`` with
  ``consumer``), acknowledging each batch once it has it. Several share a consumer; what one
  received but could not acknowledge is redelivered (after its lease) to any of them.
- :class:`CursorFollower`: follows the log by cursor (``after_cursor``), resuming after the last
  event it received wherever it reconnects; it keeps every cursor it was given, in order.

Either may also leave on its own now and then (``leave_after``: after a random number of batches
in that range), as subscribers that come and go.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from dataclasses import dataclass, field

import grpc

from msgbridge.v1 import gateway_pb2

from ._cluster import INBOUND_TYPES, Cluster

__all__ = ["ConsumerSubscriber", "CursorFollower"]

_PAUSE_S = (0.05, 0.3)


@dataclass(eq=False, kw_only=True)
class _Subscriber:
    name: str
    cluster: Cluster
    home: int = 0
    rng: random.Random = field(default_factory=random.Random)
    max_batch: int = 100
    leave_after: tuple[int, int] | None = None
    # How each connection ended: "left", "ended by server", or a gRPC code name.
    endings: collections.Counter[str] = field(default_factory=collections.Counter)
    connections: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def _request(self) -> gateway_pb2.StreamEventsRequest:
        raise NotImplementedError

    async def _received(self, replica_index: int, batch: gateway_pb2.StreamEventsResponse) -> bool:
        """Take a batch; False to drop the connection (and reconnect elsewhere)."""
        raise NotImplementedError

    async def _run(self) -> None:
        replicas = self.cluster.replicas
        index = self.home % len(replicas)
        while True:
            stub = self.cluster.stub(replicas[index])
            self.connections += 1
            budget = self.rng.randint(*self.leave_after) if self.leave_after else None
            call = stub.StreamEvents(self._request())
            ending = "ended by server"
            try:
                async for batch in call:
                    if not await self._received(index, batch):
                        ending = "ack failed"
                        break
                    if budget is not None:
                        budget -= 1
                        if budget <= 0:
                            ending = "left"
                            break
            except grpc.aio.AioRpcError as exc:
                ending = exc.code().name
            finally:
                call.cancel()
            self.endings[ending] += 1
            await asyncio.sleep(self.rng.uniform(*_PAUSE_S))
            if ending != "left":
                index = (index + 1) % len(replicas)  # its replica failed it: go to another


@dataclass(eq=False, kw_only=True)
class ConsumerSubscriber(_Subscriber):
    consumer: str
    # Shared by the consumer's subscribers: provider message id → times delivered.
    deliveries: collections.Counter[str]
    acknowledged: int = 0

    def _request(self) -> gateway_pb2.StreamEventsRequest:
        return gateway_pb2.StreamEventsRequest(
            consumer=self.consumer, earliest=True, max_batch=self.max_batch, types=INBOUND_TYPES
        )

    async def _received(self, replica_index: int, batch: gateway_pb2.StreamEventsResponse) -> bool:
        for event in batch.events:
            self.deliveries[event.provider_message_id] += 1
        stub = self.cluster.stub(self.cluster.replicas[replica_index])
        try:
            reply = await stub.AckEvents(
                gateway_pb2.AckEventsRequest(
                    consumer=self.consumer, cursors=[e.cursor for e in batch.events]
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError:
            return False  # not acknowledged: the events come again once their lease expires
        self.acknowledged += reply.acknowledged
        return True


@dataclass(eq=False, kw_only=True)
class CursorFollower(_Subscriber):
    after: int = 0
    # Every cursor received, in the order received, and provider message id → times.
    cursors: list[int] = field(default_factory=list)
    provider_ids: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def position(self) -> int:
        return self.cursors[-1] if self.cursors else self.after

    def _request(self) -> gateway_pb2.StreamEventsRequest:
        return gateway_pb2.StreamEventsRequest(
            after_cursor=self.position, max_batch=self.max_batch, types=INBOUND_TYPES
        )

    async def _received(self, replica_index: int, batch: gateway_pb2.StreamEventsResponse) -> bool:
        for event in batch.events:
            self.cursors.append(event.cursor)
            self.provider_ids[event.provider_message_id] += 1
        return True
