"""The inbound path, measured beside a trivial HTTP handler in the same run.

- ``trivial HTTP handler``: an aiohttp app answering 200 to any POST — the ceiling of any HTTP
  server in Python here;
- ``webhook ingest (msgbridge serve)``: webhooks posted to the in-process sidecar, each answered
  only after its request and event are stored;
- ``webhook ingest (separate sidecar)``: the same through ``msgbridge sidecar`` in its own
  process, forwarding over gRPC to the core;
- ``POST → subscriber at 1,000/s``: webhooks posted at a steady 1,000 per second while one
  StreamEvents subscriber receives them; the latency is from the POST to the event's arrival;
  ``(separate sidecar)``: the same through ``msgbridge sidecar``;
- ``events to one subscriber``: a subscriber reading 20,000 stored events from the earliest;
- ``replica A → subscriber on B``: two replicas on one PostgreSQL database; webhooks posted to A
  at 200/s, the delay until they reach a StreamEvents subscriber on B (LISTEN/NOTIFY wake-up).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
from aiohttp import web

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.sidecar import GrpcIngestForwarder, SidecarServer, build_sidecar_app

from ._harness import (
    BenchEnv,
    Benchmark,
    Result,
    collector_paused,
    cpu_per_call_us,
    measure,
    result_of,
    servers_cpu_s,
)
from .service import start_service

__all__ = [
    "HEADERS",
    "INBOUND",
    "Posted",
    "post_at_steady_rate",
    "post_to_subscriber_delay",
    "post_webhooks",
    "stream_from_earliest",
    "webhook_body",
]

HEADERS = {"Content-Type": "application/json"}
_RUNNING: list[object] = []
_IDS = itertools.count()


def webhook_body(text: str = "hello from the benchmark ✓", to: str = "+15550001111") -> bytes:
    """A webhook of the bench integration: an inbound message to ``to``, with a new id."""
    n = next(_IDS)
    return json.dumps(
        {"id": f"bench-{time.time_ns()}-{n}", "from": "+15557654321", "to": to, "text": text}
    ).encode()


async def start_trivial_handler() -> str:
    """(In a child process.) An aiohttp app that answers 200 to every POST."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    _RUNNING.append(runner)
    return f"http://127.0.0.1:{runner.addresses[0][1]}/hook"


async def start_separate_sidecar(core: str, public_path: str) -> str:
    """(In a child process.) ``msgbridge sidecar`` forwarding to ``core`` over gRPC."""
    forwarder = GrpcIngestForwarder(core)
    app = build_sidecar_app(
        forwarder, public_url="http://127.0.0.1:0", max_body=1 << 20, request_timeout_s=30
    )
    sidecar = SidecarServer(app, "127.0.0.1", 0)
    await sidecar.start()
    _RUNNING.extend((forwarder, sidecar))
    return f"http://127.0.0.1:{sidecar.port}{public_path}"


async def post_webhooks(benchmark: Benchmark, url: str) -> Result:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

        async def call() -> None:
            async with session.post(url, data=webhook_body(), headers=HEADERS) as response:
                await response.read()
            if response.status != 200:
                raise RuntimeError(f"answered {response.status}")

        return await measure(benchmark, call)


async def _service(env: BenchEnv, name: str) -> tuple[str, str]:
    address = await env.server(name, start_service, env.fake_url, True)
    grpc_target, webhook_url = address.split("|", 1)
    return grpc_target, webhook_url


async def trivial(env: BenchEnv, benchmark: Benchmark) -> Result:
    return await post_webhooks(benchmark, await env.server("trivial HTTP", start_trivial_handler))


async def ingest_serve(env: BenchEnv, benchmark: Benchmark) -> Result:
    _, url = await _service(env, "msgbridge service (inbound)")
    return await post_webhooks(benchmark, url)


async def _behind_separate_sidecar(env: BenchEnv, name: str) -> tuple[str, str]:
    """The service ``name`` and ``msgbridge sidecar`` in front of it: the core's gRPC address
    and the sidecar's webhook URL."""
    core, url = await _service(env, name)
    path = "/webhooks/" + url.split("/webhooks/", 1)[1]
    return core, await env.server(f"msgbridge sidecar → {name}", start_separate_sidecar, core, path)


async def ingest_separate(env: BenchEnv, benchmark: Benchmark) -> Result:
    _, sidecar_url = await _behind_separate_sidecar(env, "msgbridge service (inbound)")
    return await post_webhooks(benchmark, sidecar_url)


async def post_to_subscriber(env: BenchEnv, benchmark: Benchmark) -> Result:
    """Open loop: a POST every millisecond for 3 s; latency POST → event received."""
    core, url = await _service(env, "msgbridge service (latency)")
    return await post_to_subscriber_delay(benchmark, url, core, seconds=3.0, rate=1000)


async def post_to_subscriber_separate(env: BenchEnv, benchmark: Benchmark) -> Result:
    """The same through ``msgbridge sidecar`` in its own process."""
    core, sidecar_url = await _behind_separate_sidecar(env, "msgbridge service (latency)")
    return await post_to_subscriber_delay(benchmark, sidecar_url, core, seconds=3.0, rate=1000)


async def post_to_subscriber_delay(
    benchmark: Benchmark, url: str, core: str, *, seconds: float, rate: int
) -> Result:
    """POST ``rate`` webhooks a second to ``url`` for ``seconds`` while one StreamEvents
    subscriber on ``core`` receives them; the latency is from each POST to its event."""
    total = int(seconds * rate)
    with collector_paused():
        return await _measure_delay(benchmark, url, core, total=total, rate=rate)


def _timed_webhook() -> bytes:
    return webhook_body(text=repr(time.time()))


@dataclass
class Posted:
    """What :func:`post_at_steady_rate` saw: each answered POST's latency (seconds, in order
    of sending), the failures, and how long the posting took."""

    latencies: list[float]
    errors: int
    first_error: str | None
    seconds: float


async def post_at_steady_rate(
    url: str, *, total: int, rate: int, body: Callable[[], bytes] = webhook_body
) -> Posted:
    """POST ``total`` webhooks to ``url``, ``rate`` a second (open loop: each on time, whether
    the ones before were answered or not); a POST answered other than 200 is an error."""
    posted = Posted(latencies=[], errors=0, first_error=None, seconds=0.0)
    with collector_paused():
        await _post_at_steady_rate(url, posted, total=total, rate=rate, body=body)
    return posted


async def _post_at_steady_rate(
    url: str, posted: Posted, *, total: int, rate: int, body: Callable[[], bytes]
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:

        async def one() -> None:
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body(), headers=HEADERS) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"answered {response.status}")
            except Exception as exc:
                posted.errors += 1
                posted.first_error = posted.first_error or repr(exc)
                return
            posted.latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        posted.seconds = time.perf_counter() - started


async def _measure_delay(
    benchmark: Benchmark, url: str, core: str, *, total: int, rate: int
) -> Result:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(core) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        received = asyncio.Event()

        async def subscriber() -> None:
            async for batch in stub.StreamEvents(gateway_pb2.StreamEventsRequest()):
                now = time.time()
                for event in batch.events:
                    latencies.append(now - float(event.text))
                if len(latencies) >= total:
                    received.set()
                    return

        reader = asyncio.create_task(subscriber())
        await asyncio.sleep(0.3)
        cpu_before = servers_cpu_s()
        posted = await post_at_steady_rate(url, total=total, rate=rate, body=_timed_webhook)
        errors, first_error, elapsed = posted.errors, posted.first_error, posted.seconds
        try:
            async with asyncio.timeout(30):
                await received.wait()
        except TimeoutError:
            first_error = first_error or f"only {len(latencies)} of {total} events arrived"
        reader.cancel()
    return result_of(
        benchmark,
        latencies,
        seconds=elapsed,
        cpu_before=cpu_before,
        done=total,
        errors=errors,
        first_error=first_error,
    )


async def replica_delay(env: BenchEnv, benchmark: Benchmark) -> Result:
    """Two replicas on one PostgreSQL database: webhooks posted to A at 200/s for 3 s, a
    subscriber on B; the delay from A's POST to the event on B."""
    database_url = await env.postgres_database()
    key_file = str(Path(tempfile.mkdtemp(prefix="msgbridge-bench-key-")) / "secret.key")
    address_a = await env.server(
        "replica A", start_service, env.fake_url, True, database_url, key_file, True
    )
    address_b = await env.server(
        "replica B", start_service, env.fake_url, True, database_url, key_file, False
    )
    _, url = address_a.split("|", 1)
    core_b = address_b.split("|", 1)[0]
    return await post_to_subscriber_delay(benchmark, url, core_b, seconds=3.0, rate=200)


async def stream_rate(env: BenchEnv, benchmark: Benchmark) -> Result:
    """Store 20,000 events, then time one subscriber reading them all from the earliest."""
    core, url = await _service(env, "msgbridge service (stream)")
    total = 20_000
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        sem = asyncio.Semaphore(64)

        async def post() -> None:
            async with sem, session.post(url, data=webhook_body(), headers=HEADERS) as response:
                await response.read()

        await asyncio.gather(*(post() for _ in range(total)))
    return await stream_from_earliest(benchmark, core, total)


async def stream_from_earliest(benchmark: Benchmark, core: str, total: int) -> Result:
    """One subscriber reading ``total`` stored events from the earliest kept; events a second."""
    count = 0
    async with grpc.aio.insecure_channel(core) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        cpu_before = servers_cpu_s()
        started = time.perf_counter()
        call = stub.StreamEvents(gateway_pb2.StreamEventsRequest(earliest=True, max_batch=1000))
        async for batch in call:
            count += len(batch.events)
            if count >= total:
                break
        elapsed = time.perf_counter() - started
        call.cancel()
    return Result(
        name=benchmark.name, concurrency=1, requests=count, errors=0,
        seconds=round(elapsed, 3), rate=round(count / elapsed, 1), p50_ms=None, p99_ms=None,
        first_error=None, cpu_us=cpu_per_call_us(cpu_before, servers_cpu_s(), count),
    )  # fmt: skip


INBOUND: list[Benchmark] = [
    Benchmark(name="trivial HTTP handler", concurrency=64, run=trivial),
    Benchmark(name="webhook ingest (msgbridge serve)", concurrency=64, run=ingest_serve),
    Benchmark(name="webhook ingest (separate sidecar)", concurrency=64, run=ingest_separate),
    Benchmark(
        name="POST → subscriber at 1,000/s", concurrency=1, run=post_to_subscriber, alone=True
    ),
    Benchmark(
        name="POST → subscriber at 1,000/s (separate sidecar)",
        concurrency=1,
        run=post_to_subscriber_separate,
        alone=True,
    ),
    Benchmark(name="events to one subscriber", concurrency=1, run=stream_rate),
    Benchmark(
        name="replica A → subscriber on B (PostgreSQL)",
        concurrency=1,
        run=replica_delay,
        alone=True,
    ),
]
