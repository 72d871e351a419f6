"""``make bench-grown``: the service on a store that holds history (issue 20), loaded through the
store's own bulk path (:meth:`server.store.Store.ingest_many`) before the service starts.

- ``webhook ingest at 1,000/s, old rows kept (…)``: webhooks posted at a steady 1,000 a second
  (open loop) to the in-process sidecar of a service whose store holds ``HISTORY`` webhook
  requests two days old, each with its event and its dedupe key — three rows to purge per
  request; the latency is each POST's, until its answer (the webhook stored);
- ``webhook ingest at 1,000/s, old rows purged (…)``: the same while the retention purge deletes
  them all (:meth:`Store.purge`, as the retention keeper calls it with one day kept), started
  half a second into the load; the result notes how long the purge took and how much of it the
  load saw.

Each on SQLite and on PostgreSQL; the target is the purge's p99 at most twice the other's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.app import open_store
from server.config import Settings
from server.store import (
    InboundEventType,
    NewEvent,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)

from ._harness import BenchEnv, Benchmark, Result, _percentile_ms, cpu_per_call_us, servers_cpu_s
from .inbound import post_at_steady_rate
from .service import running_service

__all__ = ["GROWN", "retention_name"]

#: Old webhook requests in the store, each with an event and a dedupe key.
HISTORY = int(os.environ.get("MSGBRIDGE_BENCH_HISTORY", "350000"))
_LOAD_BATCH = 2_000
_RATE = 1_000
_SECONDS = 12.0
_PURGE_AFTER_S = 0.5


def retention_name(store: str, purging: bool) -> str:
    what = "old rows purged" if purging else "old rows kept"
    return f"webhook ingest at 1,000/s, {what} ({store})"


def _history(count: int, start: int) -> list[tuple[WebhookRequestRecord, list[NewEvent]]]:
    """``count`` matched requests from two days ago onwards, each with one keyed event."""
    base = datetime.now(UTC) - timedelta(days=2)
    made = []
    for n in range(start, start + count):
        received = base + timedelta(milliseconds=n)
        request = WebhookRequestRecord(
            id=f"old-{n:09d}",
            received_at=received,
            integration_id="bench",
            installation_id="old-installation",
            method="POST",
            path="/webhooks/bench",
            query="",
            headers=(("Content-Type", "application/json"),),
            body=b'{"id": "old-%d", "from": "+15557654321", "to": "+15550001111"}' % n,
            content_type="application/json",
            outcome=WebhookOutcome.MATCHED,
            reason="",
        )
        event = NewEvent(
            type=str(InboundEventType.MESSAGE),
            org_id="old-org",
            installation_id="old-installation",
            integration_id="bench",
            users=("101",),
            from_number="+15557654321",
            to_number="+15550001111",
            text=f"old message {n}",
            media_urls=(),
            provider_message_id=f"old-{n}",
            message_id="",
            status="",
            error="",
            metadata={},
            received_at=received,
            request_id=request.id,
            dedupe_key=f"old-installation|message|old-{n}",
        )
        made.append((request, [event]))
    return made


async def _load_history(settings: Settings, count: int) -> None:
    store = open_store(settings)
    await store.start()
    try:
        for start in range(0, count, _LOAD_BATCH):
            await store.ingest_many(_history(min(_LOAD_BATCH, count - start), start))
    finally:
        await store.aclose()


async def start_on_history(provider_url: str, database_url: str, purge: bool) -> str:
    """(In a child process.) The service with its sidecar (:func:`running_service`) on a store
    holding ``HISTORY`` old requests; with ``purge``, the purge of all of them starts
    ``_PURGE_AFTER_S`` after the service is up (the bench posts at once), and its counts and
    duration are printed on stderr when it ends."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    await _load_history(Settings(data_dir=data_dir, database_url=database_url), HISTORY)
    server, address = await running_service(provider_url, True, database_url, data_dir=data_dir)
    if purge:
        _PURGES.append(asyncio.get_running_loop().create_task(_purge_history(server.store)))
    return address


async def _purge_history(store: Store) -> None:
    await asyncio.sleep(_PURGE_AFTER_S)
    started = time.perf_counter()
    cut = datetime.now(UTC) - timedelta(days=1)
    counts = await store.purge(
        events_before=cut, requests_before=cut, unmatched_before=cut, dedupe_before=cut
    )
    took = time.perf_counter() - started
    print(f"    purge: {counts} in {took:.1f} s", file=sys.stderr, flush=True)


_PURGES: list[asyncio.Task[None]] = []  # kept: the loop holds only weak references to tasks


async def _ingest_at_steady_rate(benchmark: Benchmark, url: str) -> Result:
    """POST ``_RATE`` webhooks a second for ``_SECONDS``; each POST's latency to its answer."""
    cpu_before = servers_cpu_s()
    posted = await post_at_steady_rate(url, total=int(_RATE * _SECONDS), rate=_RATE)
    latencies = sorted(posted.latencies)
    return Result(
        name=benchmark.name, concurrency=benchmark.concurrency, requests=len(latencies),
        errors=posted.errors, seconds=round(posted.seconds, 3),
        rate=round(int(_RATE * _SECONDS) / posted.seconds, 1),
        p50_ms=_percentile_ms(latencies, 0.5), p99_ms=_percentile_ms(latencies, 0.99),
        first_error=posted.first_error,
        cpu_us=cpu_per_call_us(cpu_before, servers_cpu_s(), len(latencies)),
    )  # fmt: skip


def _retention(postgres: bool, purge: bool) -> Callable[[BenchEnv, Benchmark], Awaitable[Result]]:
    async def run(env: BenchEnv, benchmark: Benchmark) -> Result:
        database_url = await env.postgres_database() if postgres else ""
        address = await env.server(
            benchmark.name, start_on_history, env.fake_url, database_url, purge
        )
        return await _ingest_at_steady_rate(benchmark, address.split("|", 1)[1])

    return run


GROWN: list[Benchmark] = [
    Benchmark(
        name=retention_name(store, purge),
        concurrency=1,
        run=_retention(store == "PostgreSQL", purge),
        alone=True,
    )
    for store in ("SQLite", "PostgreSQL")
    for purge in (False, True)
]
