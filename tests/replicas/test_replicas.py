"""Several replicas on one PostgreSQL database, as real processes: any replica takes any call and
any webhook, and what they share — events, durable consumers, idempotency keys, the schema, the
secret key — behaves as one service."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.demo import start_fake_provider
from tests.reliability._cluster import FROM_NUMBER, INTEGRATION, ORG, Cluster, definition_json
from tests.reliability._processes import ReplicaProcess, write_secret_key
from tests.reliability._sends import reason_and_delay
from tests.reliability._waiting import eventually
from tests.reliability._webhooks import webhook_body

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

MIGRATIONS = Path(__file__).resolve().parents[2] / "server" / "store" / "migrations" / "postgres"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post_webhook(
    http: aiohttp.ClientSession, cluster: Cluster, replica: ReplicaProcess, provider_id: str
) -> int:
    url = f"http://127.0.0.1:{replica.http_port}{cluster.webhook_path}"
    body = webhook_body(provider_id, 0)
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
        return answer.status


async def provider_requests(
    http: aiohttp.ClientSession, cluster: Cluster, text: str
) -> list[dict[str, Any]]:
    """The send requests the fake provider received with ``text``."""
    url = f"{cluster.provider.url}/_fake/requests"
    async with http.get(url, params={"path": "/messages"}) as answer:
        requests: list[dict[str, Any]] = (await answer.json())["requests"]
    return [r for r in requests if (r.get("json") or {}).get("content") == text]


class Reader:
    """Reads a StreamEvents call in the background; with ``ack``, acknowledges each batch."""

    def __init__(
        self,
        cluster: Cluster,
        replica: ReplicaProcess,
        request: gateway_pb2.StreamEventsRequest,
        *,
        ack: bool = False,
    ) -> None:
        self.stub = cluster.stub(replica)
        self.request = request
        self.ack = ack
        self.events: list[gateway_pb2.Event] = []
        self.call = self.stub.StreamEvents(request)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for batch in self.call:
                self.events.extend(batch.events)
                if self.ack:
                    await self.stub.AckEvents(
                        gateway_pb2.AckEventsRequest(
                            consumer=self.request.consumer,
                            cursors=[e.cursor for e in batch.events],
                        )
                    )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise
        except asyncio.CancelledError:
            if not self.call.cancelled():  # not our leave(): a real cancellation
                raise

    @property
    def provider_ids(self) -> list[str]:
        return [e.provider_message_id for e in self.events]

    async def wait_for(self, wanted: set[str], within_s: float = 60.0) -> None:
        async with asyncio.timeout(within_s):
            while not wanted <= set(self.provider_ids):
                if self.task.done():
                    self.task.result()  # the stream failed: say how
                    raise AssertionError("the stream ended")
                await asyncio.sleep(0.05)

    async def leave(self) -> None:
        self.call.cancel()
        await self.task


async def test_an_event_ingested_on_one_replica_reaches_a_subscriber_on_the_other(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b = cluster.replicas
    on_b = Reader(cluster, b, gateway_pb2.StreamEventsRequest(after_cursor=0))
    try:
        assert await post_webhook(http, cluster, a, "cross-1") == 200
        await on_b.wait_for({"cross-1"})
        # B's subscriber is now following the log, waiting; the next event ingested on A wakes it.
        assert await post_webhook(http, cluster, a, "cross-2") == 200
        await on_b.wait_for({"cross-2"})
    finally:
        await on_b.leave()
    assert on_b.provider_ids == ["cross-1", "cross-2"]
    event = on_b.events[1]
    assert event.type == gateway_pb2.Event.MESSAGE
    assert (event.org_id, event.to, list(event.users)) == (ORG, FROM_NUMBER, ["101"])
    assert on_b.events[0].cursor < event.cursor


async def test_a_durable_consumer_is_shared_across_replicas(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b = cluster.replicas

    def consume(replica: ReplicaProcess, *, ack: bool = True) -> Reader:
        request = gateway_pb2.StreamEventsRequest(consumer="shared", earliest=True, max_batch=10)
        return Reader(cluster, replica, request, ack=ack)

    # Two subscribers of one consumer, one per replica: each event goes to one of them.
    on_a, on_b = consume(a), consume(b)
    first = [f"shared-{n}" for n in range(200)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for provider_id in first:
        queue.put_nowait(provider_id)

    async def poster(replica: ReplicaProcess) -> None:
        while not queue.empty():
            assert await post_webhook(http, cluster, replica, queue.get_nowait()) == 200

    await asyncio.gather(*(poster(r) for r in (a, b) for _ in range(4)))
    assert await eventually(lambda: len(on_a.events) + len(on_b.events) >= len(first), within_s=60)
    await asyncio.sleep(0.5)  # nothing more comes: every event was acknowledged once
    await on_a.leave()
    await on_b.leave()
    delivered = collections.Counter(on_a.provider_ids + on_b.provider_ids)
    assert sorted(delivered) == sorted(first)
    assert set(delivered.values()) == {1}, "an event went to two subscribers"

    # A subscriber on A leaves without acknowledging what it got: a new subscriber of the
    # consumer on B gets exactly those events, at once (the leases were released).
    taker = consume(a, ack=False)
    second = {f"unacked-{n}" for n in range(20)}
    for provider_id in sorted(second):
        assert await post_webhook(http, cluster, b, provider_id) == 200
    await taker.wait_for(second)
    await taker.leave()
    heir = consume(b)
    try:
        await heir.wait_for(second)
    finally:
        await heir.leave()
    assert sorted(heir.provider_ids) == sorted(second)
    assert sorted(taker.provider_ids) == sorted(second)


async def test_an_idempotency_key_holds_across_replicas(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b = cluster.replicas
    script = {"path": "/messages", "answers": [{"delay_s": 1.0}]}
    async with http.post(f"{cluster.provider.url}/_fake/script", json=script) as answer:
        assert answer.status == 204

    def request(text: str, key: str) -> gateway_pb2.SendMessageRequest:
        message = gateway_pb2.SendMessageRequest(
            org_id=ORG, to="+15557654321", text=text, idempotency_key=key
        )
        setattr(message, "from", FROM_NUMBER)
        return message

    once = request("once across replicas", "key-1")
    on_a = asyncio.ensure_future(cluster.stub(a).SendMessage(once, timeout=30))

    async def at_the_provider() -> bool:
        return bool(await provider_requests(http, cluster, once.text))

    assert await eventually(at_the_provider, within_s=30)
    # While A's call is at the provider, the same key on B is "in progress", not sent again.
    with pytest.raises(grpc.aio.AioRpcError) as in_progress:
        await cluster.stub(b).SendMessage(once, timeout=30)
    assert in_progress.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_and_delay(in_progress.value)[0] == "SEND_IN_PROGRESS"
    first = await on_a
    again = await cluster.stub(b).SendMessage(once, timeout=30)
    assert again.replayed and not first.replayed
    assert (again.message_id, again.provider_message_id) == (
        first.message_id,
        first.provider_message_id,
    )
    assert len(await provider_requests(http, cluster, once.text)) == 1

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await cluster.stub(b).SendMessage(request("another text", "key-1"), timeout=30)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # B opens the installation's secret that A sealed: the replicas share the key file.
    await cluster.stub(b).SendMessage(request("sent by B", "key-2"), timeout=30)
    (sent_by_b,) = await provider_requests(http, cluster, "sent by B")
    headers = {str(k).lower(): v for k, v in sent_by_b["headers"]}
    assert headers["authorization"] == "Bearer reliability-key"


async def test_a_webhook_retried_through_the_other_replica_makes_one_event(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b = cluster.replicas
    statuses = await asyncio.gather(
        *(post_webhook(http, cluster, replica, "twice") for replica in (a, b) * 5)
    )
    assert statuses == [200] * 10
    listed = await cluster.stub(b).ListEvents(gateway_pb2.ListEventsRequest())
    assert [e.provider_message_id for e in listed.events] == ["twice"]


async def test_replicas_starting_together_migrate_once(tmp_path: Path, database_url: str) -> None:
    key = write_secret_key(tmp_path / "secret.key")
    replicas = [
        ReplicaProcess(
            name=f"replica-{n}",
            database_url=database_url,
            data_dir=tmp_path / f"replica-{n}",
            secret_key_file=key,
        )
        for n in range(3)
    ]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        for replica in replicas:
            async with grpc.aio.insecure_channel(replica.target) as channel:
                health = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="")
                )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        codes = await asyncio.gather(*(r.stop() for r in replicas))
    assert codes == [0, 0, 0]
    files = sorted(p.stem for p in MIGRATIONS.glob("*.sql"))
    applied = sorted(
        str(entry["msg"]).removeprefix("applied schema migration ")
        for replica in replicas
        for entry in replica.entries()
        if str(entry.get("msg", "")).startswith("applied schema migration ")
    )
    assert applied == files
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
    finally:
        await connection.close()
    assert [f"{row['version']:04d}_{row['name']}" for row in rows] == files


async def test_replicas_starting_together_on_a_new_key_file_share_one_key(
    tmp_path: Path, database_url: str
) -> None:
    key_file = tmp_path / "keys" / "secret.key"  # not there yet: the first replica creates it
    replicas = [
        ReplicaProcess(
            name=f"replica-{n}",
            database_url=database_url,
            data_dir=tmp_path / f"replica-{n}",
            secret_key_file=key_file,
        )
        for n in range(3)
    ]
    provider = await start_fake_provider()
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        async with grpc.aio.insecure_channel(replicas[0].target) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            await stub.RegisterIntegration(
                gateway_pb2.RegisterIntegrationRequest(
                    definition_json=definition_json(provider.url)
                )
            )
            await stub.EnableIntegration(
                gateway_pb2.EnableIntegrationRequest(
                    org_id=ORG,
                    integration_id=INTEGRATION,
                    properties={"API key": "sealed by replica-0"},
                    numbers=[gateway_pb2.NumberAssignment(number=FROM_NUMBER)],
                )
            )
        for replica in replicas[1:]:
            async with grpc.aio.insecure_channel(replica.target) as channel:
                request = gateway_pb2.SendMessageRequest(org_id=ORG, to="+15557654321", text="x")
                setattr(request, "from", FROM_NUMBER)
                await gateway_pb2_grpc.GatewayStub(channel).SendMessage(request, timeout=30)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        await provider.aclose()
    sent = provider.state.requests_to("/messages")
    assert [r.header("Authorization") for r in sent] == ["Bearer sealed by replica-0"] * 2
    assert len(key_file.read_text().split()) == 1
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret.key"]
    created = [
        e for r in replicas for e in r.entries() if e.get("msg") == "created a new secret key file"
    ]
    assert len(created) == 1
