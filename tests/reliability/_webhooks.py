"""A provider posting webhooks the way real ones do: each until it is answered 2xx.

Every webhook is an inbound message with a provider message id of its own: an SMS, or what
``bodies`` makes (MMS: :class:`tests.reliability._media_files.MmsPlan`). It is posted to one of the
sidecars (a load balancer in front of them: the next one after a failure) and, on anything but a
2xx — a 503 while a replica is down, a reset connection when a sidecar is killed mid-request, a
timeout — posted again, unchanged, after an exponential backoff with jitter (for ten minutes at
most, as providers give up too). The posts are paced
at an even rate so that they span the whole time processes are being killed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

__all__ = ["WebhookSender", "webhook_body"]

_MAX_BACKOFF_S = 2.0


def webhook_body(provider_id: str, n: int) -> bytes:
    return json.dumps(
        {"id": provider_id, "from": "+15557654321", "to": "+15550001111", "text": f"inbound #{n}"}
    ).encode()


@dataclass(eq=False, kw_only=True)
class WebhookSender:
    """Posts ``count`` webhooks to ``path`` on the sidecars at ``urls()``."""

    urls: Callable[[], Sequence[str]]
    path: str
    count: int
    run_id: str
    rate_per_s: float
    concurrency: int = 32
    rng: random.Random = field(default_factory=random.Random)
    request_timeout_s: float = 15.0
    give_up_after_s: float = 600.0  # then it counts as never acknowledged
    # Provider message id → attempts it took; only webhooks answered 2xx are here.
    acknowledged: dict[str, int] = field(default_factory=dict)
    # Why attempts were not answered 2xx: "503", "ClientConnectorError", … → count.
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)
    posted: list[str] = field(default_factory=list)
    # Provider message id → time.monotonic() when it was answered 2xx.
    acknowledged_at: dict[str, float] = field(default_factory=dict)
    # The body of webhook ``n`` with its provider message id (an inbound SMS unless given).
    bodies: Callable[[str, int], bytes] = field(default=webhook_body)

    def provider_id(self, n: int) -> str:
        return f"wh-{self.run_id}-{n}"

    @property
    def retries(self) -> int:
        return sum(self.refusals.values())

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Post them all; return once each was answered 2xx (or ``stop`` is set)."""
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        connector = aiohttp.TCPConnector(limit=self.concurrency * 2)
        timeout = aiohttp.ClientTimeout(total=self.request_timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            workers = [
                asyncio.create_task(self._worker(http, queue, stop))
                for _ in range(self.concurrency)
            ]
            started = time.monotonic()
            for n in range(self.count):
                due = started + n / self.rate_per_s
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop is not None and stop.is_set():
                    break
                self.posted.append(self.provider_id(n))
                queue.put_nowait(n)
            for _ in workers:
                queue.put_nowait(None)
            await asyncio.gather(*workers)

    async def _worker(
        self,
        http: aiohttp.ClientSession,
        queue: asyncio.Queue[int | None],
        stop: asyncio.Event | None,
    ) -> None:
        while (n := await queue.get()) is not None:
            await self._deliver(http, n, stop)

    async def _deliver(
        self, http: aiohttp.ClientSession, n: int, stop: asyncio.Event | None
    ) -> None:
        provider_id = self.provider_id(n)
        body = self.bodies(provider_id, n)
        headers = {"Content-Type": "application/json"}
        choice = self.rng.randrange(1 << 16)
        attempt = 0
        give_up_at = time.monotonic() + self.give_up_after_s
        while (stop is None or not stop.is_set()) and time.monotonic() < give_up_at:
            attempt += 1
            urls = self.urls()
            url = urls[(choice + attempt) % len(urls)] + self.path
            try:
                async with http.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    if 200 <= answer.status < 300:
                        self.acknowledged[provider_id] = attempt
                        self.acknowledged_at[provider_id] = time.monotonic()
                        return
                    self.refusals[str(answer.status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.refusals[type(exc).__name__] += 1
            backoff = min(_MAX_BACKOFF_S, 0.05 * 2 ** min(attempt, 8))
            await asyncio.sleep(backoff * (0.5 + self.rng.random()))
