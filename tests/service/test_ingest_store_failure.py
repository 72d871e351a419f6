"""A webhook is answered 2xx only once it is stored (README, "Inbound"): over real sockets, with
the real sidecar in front of the real service, on a real SQLite store whose webhook writes the
test makes fail or stall. The provider then gets 5xx, or no answer while the write stalls —
never 2xx — and its retry, once the store has recovered, is stored once and answered 2xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest

import server.app
from msgbridge.v1 import gateway_pb2
from server.config import Settings
from server.demo import RunningFakeProvider
from server.sidecar import GrpcIngestForwarder, SidecarServer, build_sidecar_app
from server.store import (
    HeldReceipt,
    IngestOutcome,
    MediaHold,
    MessageTransition,
    NewEvent,
    SqliteStore,
    StoreError,
    WebhookRequestRecord,
)

from .conftest import Gateway, GatewayFactory
from .test_inbound import SEED_WEBHOOKS, hook_path, inbound_definition

BODY = json.dumps(
    {
        "method": "message",
        "params": {"from": "+15557654321", "to": "+15550001111", "content": "kept"},
    }
).encode()


class GatedStore(SqliteStore):
    """The real SQLite store, whose webhook writes fail or wait while the test says so."""

    def __init__(self, path: Path, *, filename: str) -> None:
        super().__init__(path, filename=filename)
        #: Raised by every webhook write (once the gate is open) while set.
        self.failure: StoreError | None = None
        #: Webhook writes wait here while it is clear.
        self.gate = asyncio.Event()
        self.gate.set()
        #: Set once a webhook write has begun.
        self.entered = asyncio.Event()
        #: Webhook writes that reached the database.
        self.stored = 0
        self._running = 0
        self._settled = asyncio.Event()
        self._settled.set()

    async def settled(self) -> None:
        """Return once no webhook write is running (each has stored, failed or been cancelled)."""
        await self._settled.wait()

    async def ingest(
        self,
        request: WebhookRequestRecord,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition] = (),
        held: Sequence[HeldReceipt] = (),
        media_holds: Sequence[MediaHold] = (),
    ) -> IngestOutcome:
        self.entered.set()
        self._running += 1
        self._settled.clear()
        try:
            await self.gate.wait()
            if self.failure is not None:
                raise self.failure
            outcome = await super().ingest(request, events, transitions, held, media_holds)
            self.stored += 1
            return outcome
        finally:
            self._running -= 1
            if not self._running:
                self._settled.set()


@pytest.fixture
async def gated(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[GatedStore, GatewayFactory]]:
    """The service's store, gated; start the service with the factory (on SQLite whatever
    ``MSGBRIDGE_TEST_DATABASE`` says: the double wraps the SQLite store)."""
    database = tmp_path / "gated" / "msgbridge.db"
    store = GatedStore(database.parent, filename=database.name)

    def open_store(settings: Settings) -> SqliteStore:
        return store

    monkeypatch.setattr(server.app, "open_store", open_store)

    async def start(**changes: object) -> Gateway:
        gateway: Gateway = await start_gateway(database_url=f"sqlite:///{database}", **changes)
        return gateway

    yield store, start


async def _prepare(gateway: Gateway, provider: RunningFakeProvider) -> str:
    """Register and enable the integration; the webhook path of the installation."""
    await gateway.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    return hook_path(await gateway.enable("acme-sms"))


async def _post(http: aiohttp.ClientSession, url: str) -> int:
    async with http.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
        await r.read()
        return r.status


async def _kept(gateway: Gateway) -> list[str]:
    events = (await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())).events
    return [e.text for e in events]


async def _nothing_kept(gateway: Gateway) -> None:
    assert await _kept(gateway) == []
    listed = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    assert list(listed.webhooks) == []


async def test_a_failing_store_write_is_answered_5xx_and_the_retry_is_stored(
    gated: tuple[GatedStore, GatewayFactory], provider: RunningFakeProvider
) -> None:
    store, start = gated
    gateway = await start(sidecar=True)
    url = f"http://127.0.0.1:{gateway.server.http_port}{await _prepare(gateway, provider)}"
    async with aiohttp.ClientSession() as http:
        store.failure = StoreError("disk I/O error")
        for _ in range(2):
            status = await _post(http, url)
            assert 500 <= status <= 599, f"answered {status} although nothing was stored"
        await _nothing_kept(gateway)
        store.failure = None  # the store has recovered: the provider's retry is kept
        assert await _post(http, url) == 200
    assert await _kept(gateway) == ["kept"]


async def test_a_stalled_store_write_is_not_answered_until_it_ends(
    gated: tuple[GatedStore, GatewayFactory], provider: RunningFakeProvider
) -> None:
    store, start = gated
    gateway = await start(sidecar=True)
    base = f"http://127.0.0.1:{gateway.server.http_port}"
    url = base + await _prepare(gateway, provider)
    async with aiohttp.ClientSession() as http:

        async def stall_then(failure: StoreError | None) -> int:
            """Post while the write stalls: no answer meanwhile; the status once it ends."""
            store.entered.clear()
            store.gate.clear()
            posted = asyncio.create_task(_post(http, url))
            async with asyncio.timeout(30):
                await store.entered.wait()
                # The sidecar serves other requests meanwhile (an answer written early would
                # have reached the client by the time this one has).
                async with http.get(base + "/healthz") as health:
                    assert health.status == 200
            assert not posted.done(), "answered while the store write was still running"
            store.failure = failure
            store.gate.set()
            async with asyncio.timeout(30):
                return await posted

        status = await stall_then(StoreError("database is locked"))
        assert 500 <= status <= 599, f"answered {status} although the store write failed"
        await _nothing_kept(gateway)
        # The retry stalls too, then succeeds: answered 200 once the event is stored.
        assert await stall_then(None) == 200
        assert store.stored == 1
    assert await _kept(gateway) == ["kept"]


async def test_through_a_separate_sidecar_a_store_failure_is_503_with_retry_after(
    gated: tuple[GatedStore, GatewayFactory], provider: RunningFakeProvider
) -> None:
    # `msgbridge sidecar --core`: the core's store failure crosses gRPC as UNAVAILABLE, which the
    # sidecar answers 503 with Retry-After; a stall past its deadline for the core is a 503 too.
    store, start = gated
    core = await start()
    path = await _prepare(core, provider)
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{core.port}", timeout_s=1.0)
    app = build_sidecar_app(
        forwarder, public_url="http://127.0.0.1:0", max_body=1 << 20, request_timeout_s=30
    )
    sidecar = SidecarServer(app, "127.0.0.1", 0)
    await sidecar.start()
    http_port = sidecar.port
    url = f"http://127.0.0.1:{http_port}{path}"
    headers = {"Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as http:
            store.failure = StoreError("disk I/O error")
            async with http.post(url, data=BODY, headers=headers) as answer:
                assert answer.status == 503
                assert answer.headers["Retry-After"]
            # Stalls until well past the sidecar's deadline for the core, then fails (whether
            # the core cancelled it at its deadline or not, the write ends without storing).
            store.gate.clear()
            async with asyncio.timeout(30), http.post(url, data=BODY, headers=headers) as answer:
                assert answer.status == 503
                assert answer.headers["Retry-After"]
            store.gate.set()
            async with asyncio.timeout(30):
                await store.settled()
            await _nothing_kept(core)
            store.failure = None
            assert await _post(http, url) == 200
    finally:
        await forwarder.aclose()
        await sidecar.aclose()
    assert await _kept(core) == ["kept"]
