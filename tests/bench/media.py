"""Media (docs/media.md), measured beside what it is judged against in the same run.

- ``webhook ingest, MMS (media fetch off)``: MMS webhooks, each naming one ~100 KB JPEG on a
  fake media provider, posted to ``msgbridge serve`` run with ``--no-media-fetch``: each is
  answered once its request and event are stored;
- ``webhook ingest, one media item per MMS (media fetch on)``: the same webhooks to a service that
  fetches and keeps each file. The 2xx still comes once the request and its hold are stored (the
  fetch is off the 2xx path), but the fetches run in the same process meanwhile and compete for
  its CPU, which is their real cost. After the timed run the benchmark waits until every accepted
  MMS has its event with its file kept, and prints how many the fetcher had taken by the end of
  the run and how long the rest took: the comparison only holds when the files were kept;
- ``static file handler (aiohttp FileResponse, 100 KB)``: a bare aiohttp app serving one 100 KB
  file from disk — the ceiling of any Python HTTP server here;
- ``media served (sidecar, signed URL, 100 KB)``: an uploaded 100 KB file, GET at its signed URL
  from the in-process sidecar (signature checked, record read, bytes streamed from the blob).

The media provider is the fake provider (``server.demo``) in a process of its own, scripted to
answer the file's path with the bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import grpc
from aiohttp import web

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.demo import Answer, start_fake_provider

from ._harness import BenchEnv, Benchmark, Result, measure
from .service import start_service

__all__ = ["MEDIA"]

_HEADERS = {"Content-Type": "application/json"}
_MEDIA_PATH = "/media/photo.jpg"
_FILE_SIZE = 100 * 1024
# How long the fetcher may take, after the timed run, to keep the files still waiting.
_DRAIN_S = 180.0
_RUNNING: list[object] = []
_IDS = itertools.count()


def _jpeg() -> bytes:
    """~100 KB that sniff as a JPEG (random, so that nothing compresses it)."""
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
    return head + random.Random(17).randbytes(_FILE_SIZE - len(head))


def _png() -> bytes:
    head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    return head + random.Random(18).randbytes(_FILE_SIZE - len(head))


async def start_media_provider() -> str:
    """(In a child process.) The fake provider answering ``_MEDIA_PATH`` with the JPEG; keeps
    only its last request, whose ``seq`` counts the fetches. Returns its base URL."""
    fake = await start_fake_provider(max_recorded=1)
    fake.state.script(_MEDIA_PATH, Answer(body=_jpeg(), headers=(("Content-Type", "image/jpeg"),)))
    _RUNNING.append(fake)
    return fake.url


async def start_mms_service(provider_url: str, media_fetch: bool) -> str:
    """(In a child process.) The service with its sidecar and the bench integration's MMS model,
    fetching inbound files or not."""
    return await start_service(provider_url, True, mms=True, media_fetch=media_fetch)


async def start_static_handler(content: bytes) -> str:
    """(In a child process.) An aiohttp app whose one route serves a file of ``content`` with
    ``FileResponse``. Returns the file's URL."""
    path = Path(tempfile.mkdtemp(prefix="msgbridge-bench-static-")) / "file.png"
    path.write_bytes(content)

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/file.png", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    _RUNNING.append(runner)
    return f"http://127.0.0.1:{runner.addresses[0][1]}/file.png"


# --- ingest ----------------------------------------------------------------------------------


def _mms(media_url: str) -> bytes:
    message_id = f"bench-mms-{time.time_ns()}-{next(_IDS)}"
    return json.dumps(
        {"id": message_id, "from": "+15557654321", "to": "+15550001111", "text": "a photo",
         "url": media_url}
    ).encode()  # fmt: skip


async def _fetches(session: aiohttp.ClientSession, provider_url: str) -> int:
    """How many requests the media provider has answered (its last record's ``seq``)."""
    async with session.get(f"{provider_url}/_fake/requests") as response:
        records = (await response.json())["requests"]
    return int(records[-1]["seq"]) if records else 0


async def _kept(core: str, accepted: int, fetch: bool) -> tuple[int, int, float]:
    """Read the events from the earliest until ``accepted`` MMS events came (or ``_DRAIN_S``
    passed): how many came, how many carry a kept file, and the seconds it took."""
    started = time.perf_counter()
    events = kept = 0
    async with grpc.aio.insecure_channel(core) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        call = stub.StreamEvents(gateway_pb2.StreamEventsRequest(earliest=True, max_batch=1000))

        async def read() -> None:
            nonlocal events, kept
            async for batch in call:
                for event in batch.events:
                    events += 1
                    kept += sum(1 for item in event.media if item.media_id and not item.error)
                if events >= accepted:
                    return

        try:
            async with asyncio.timeout(_DRAIN_S if fetch else 30.0):
                await read()
        except TimeoutError:
            pass
        finally:
            call.cancel()
    return events, kept, time.perf_counter() - started


async def _ingest(env: BenchEnv, benchmark: Benchmark, *, fetch: bool) -> Result:
    provider = await env.server("media provider", start_media_provider)
    name = f"msgbridge service (MMS, fetch {'on' if fetch else 'off'})"
    address = await env.server(name, start_mms_service, env.fake_url, fetch)
    core, url = address.split("|", 1)
    media_url = provider + _MEDIA_PATH
    accepted = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        before = await _fetches(session, provider)

        async def call() -> None:
            nonlocal accepted
            body = _mms(media_url)
            async with session.post(url, data=body, headers=_HEADERS) as response:
                await response.read()
            if response.status != 200:
                raise RuntimeError(f"answered {response.status}")
            accepted += 1

        result = await measure(benchmark, call)
        during = await _fetches(session, provider) - before
        events, kept, seconds = await _kept(core, accepted, fetch)
    print(
        f"    {accepted} MMS answered 2xx; media fetched by the end of the run: {during};"
        f" events {events}, with their file kept {kept}, all read {seconds:.1f} s after the run",
        file=sys.stderr,
        flush=True,
    )
    if events < accepted or (fetch and kept < accepted):
        result["errors"] += accepted - (kept if fetch else events)
        result["first_error"] = result["first_error"] or (
            f"only {kept if fetch else events} of {accepted} MMS kept their file"
            if fetch
            else f"only {events} of {accepted} MMS events"
        )
    return result


async def ingest_fetch_off(env: BenchEnv, benchmark: Benchmark) -> Result:
    return await _ingest(env, benchmark, fetch=False)


async def ingest_fetch_on(env: BenchEnv, benchmark: Benchmark) -> Result:
    return await _ingest(env, benchmark, fetch=True)


# --- serving ---------------------------------------------------------------------------------


async def _get_measure(benchmark: Benchmark, url: str, size: int) -> Result:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

        async def call() -> None:
            async with session.get(url) as response:
                body = await response.read()
            if response.status != 200 or len(body) != size:
                raise RuntimeError(f"answered {response.status} with {len(body)} bytes")

        return await measure(benchmark, call)


async def static(env: BenchEnv, benchmark: Benchmark) -> Result:
    url = await env.server("static file handler", start_static_handler, _png())
    return await _get_measure(benchmark, url, _FILE_SIZE)


async def _chunks(content: bytes) -> AsyncIterator[gateway_pb2.UploadMediaRequest]:
    start = gateway_pb2.UploadMediaRequest.Start(org_id="bench", filename="photo.png")
    yield gateway_pb2.UploadMediaRequest(start=start)
    yield gateway_pb2.UploadMediaRequest(chunk=content)


async def media_served(env: BenchEnv, benchmark: Benchmark) -> Result:
    address = await env.server("msgbridge service (media)", start_service, env.fake_url, True)
    core, webhook_url = address.split("|", 1)
    async with grpc.aio.insecure_channel(core) as channel:
        info = await gateway_pb2_grpc.GatewayStub(channel).UploadMedia(_chunks(_png()))
    # The URL is made with the configured public URL (port 0 here): the sidecar's real port.
    signed, sidecar = urlsplit(info.url), urlsplit(webhook_url)
    url = signed._replace(netloc=sidecar.netloc).geturl()
    return await _get_measure(benchmark, url, info.size)


MEDIA: list[Benchmark] = [
    Benchmark(name="webhook ingest, MMS (media fetch off)", concurrency=64, run=ingest_fetch_off),
    Benchmark(
        name="webhook ingest, one media item per MMS (media fetch on)",
        concurrency=64,
        run=ingest_fetch_on,
    ),
    Benchmark(
        name="static file handler (aiohttp FileResponse, 100 KB)", concurrency=32, run=static
    ),
    Benchmark(name="media served (sidecar, signed URL, 100 KB)", concurrency=32, run=media_served),
]
