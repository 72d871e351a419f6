"""Replies a client with gRPC's default 4 MiB receive limit can read, however large the records.

Over real sockets: webhooks of ~950 KB posted to the in-process sidecar, read back through a
channel with default limits (the fixture's), the typed client and the ``msgbridge`` CLI. Before
replies were bounded in bytes, one StreamEventsResponse or list page carried several such records
and the client refused it with RESOURCE_EXHAUSTED ("4760377 vs. 4194304").
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from client import AsyncClient, ClientOptions
from client.cli import main
from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import SEED_MODELS, Gateway, GatewayFactory, definition

BIG = 950_000  # characters of text per webhook: five are more than 4 MiB together
DEFAULT_LIMIT = 4 * 1024 * 1024


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, gateway: Gateway, path: str, body: Any) -> None:
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}"
    data = io.BytesIO(json.dumps(body).encode())  # aiohttp warns of large bytes bodies
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.text()


def message(text: str) -> dict[str, Any]:
    return {
        "method": "message",
        "params": {"from": "+15557654321", "to": "+15550001111", "content": text},
    }


async def big_events(
    gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession, count: int
) -> tuple[str, list[str]]:
    """``count`` message events of BIG characters each, distinct; their installation's path."""
    await gateway.register(definition(provider.url))
    installation = await gateway.enable("acme-sms")
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    texts = [str(n) * BIG for n in range(count)]
    for text in texts:
        await post(http, gateway, path, message(text))
    return path, texts


async def collect(gateway: Gateway, request: gateway_pb2.StreamEventsRequest, count: int) -> Any:
    """The first ``count`` events of a stream, and the size of its largest response."""
    events: list[gateway_pb2.Event] = []
    largest = 0
    call = gateway.stub.StreamEvents(request)
    async with asyncio.timeout(30):
        async for batch in call:
            largest = max(largest, batch.ByteSize())
            events.extend(batch.events)
            if len(events) >= count:
                break
    call.cancel()
    return events, largest


def run_cli(*arguments: str) -> Any:
    """``msgbridge …`` in a thread (the service runs on this test's event loop)."""
    return asyncio.to_thread(main, list(arguments))


@pytest.fixture
async def inbound(start_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await start_gateway(sidecar=True)
    return gateway


async def test_stream_events_from_the_start_and_resuming_with_default_limits(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    _, texts = await big_events(inbound, provider, http, 5)

    events, largest = await collect(inbound, gateway_pb2.StreamEventsRequest(earliest=True), 5)
    assert [e.text for e in events] == texts
    assert largest < DEFAULT_LIMIT
    assert not any(e.truncated for e in events)

    # Resuming after each cursor in turn reads the rest, also for a durable consumer.
    for done in range(1, 5):
        request = gateway_pb2.StreamEventsRequest(after_cursor=events[done - 1].cursor)
        rest, _ = await collect(inbound, request, 5 - done)
        assert [e.text for e in rest] == texts[done:]
    durable = gateway_pb2.StreamEventsRequest(earliest=True, consumer="core", max_batch=5000)
    leased, largest = await collect(inbound, durable, 5)
    assert [e.cursor for e in leased] == [e.cursor for e in events]
    assert largest < DEFAULT_LIMIT


async def test_list_events_pages_by_size_and_the_clients_follow(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    _, texts = await big_events(inbound, provider, http, 5)

    first = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=1000))
    assert 0 < len(first.events) < 5
    assert first.ByteSize() < DEFAULT_LIMIT
    assert first.next_page_token == str(first.events[-1].cursor)

    target = f"127.0.0.1:{inbound.port}"
    async with await AsyncClient.connect(target, options=ClientOptions()) as client:
        listed = [e.text async for e in client.list_events()]
        small_pages = [e.text async for e in client.list_events(page_size=2)]
    assert listed == small_pages == texts


async def test_cli_events_and_unmatched_print_every_big_record(
    inbound: Gateway,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, texts = await big_events(inbound, provider, http, 5)
    unmatched = [{"method": "unknown", "pad": f"{n:x}" * BIG} for n in range(16)]
    for body in unmatched:
        await post(http, inbound, path, body)
    target = f"127.0.0.1:{inbound.port}"

    assert await run_cli("events", "--json", "--target", target) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == texts
    assert await run_cli("events", "--after", "0", "--page-size", "1", "--target", target) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5

    assert await run_cli("unmatched", "--json", "--target", target) == 0
    kept = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(kept) == 16  # newest first
    assert {len(webhook["body"]) for webhook in kept} == {len(_base64(unmatched[0]))}
    assert await run_cli("unmatched", "--page-size", "3", "--target", target) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 16  # a header, a row each


def _base64(body: Any) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


async def test_one_record_larger_than_any_reply_is_cut_and_flagged_not_withheld(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The sidecar's largest body is a setting: here large enough for one 4.5 MB record.
    gateway: Gateway = await start_gateway(sidecar=True, webhook_max_body=6 * 1024 * 1024)
    huge = "h" * 4_500_000
    path, _ = await big_events(gateway, provider, http, 0)
    await post(http, gateway, path, message(huge))
    await post(http, gateway, path, message("after the huge one"))
    await post(http, gateway, path, {**message(huge), "method": "unknown"})

    events, _ = await collect(gateway, gateway_pb2.StreamEventsRequest(earliest=True), 2)
    cut, after = events
    assert cut.truncated and 0 < len(cut.text) < len(huge) and huge.startswith(cut.text)
    assert (after.text, after.truncated) == ("after the huge one", False)
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())
    assert [e.truncated for e in listed.events] == [True, False]
    assert await run_cli("events", "--target", f"127.0.0.1:{gateway.port}") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(truncated to fit a reply)") and len(lines) == 2

    page = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    (webhook,) = page.webhooks
    assert webhook.truncated and len(webhook.body) < len(huge)

    # The stored request is whole: replayed once the definition knows it, it yields the whole
    # text, which the reply (and the log) carries cut, flagged.
    await gateway.register(knowing_unknown(provider.url))
    replay = await gateway.stub.ReplayWebhook(gateway_pb2.ReplayWebhookRequest(id=webhook.id))
    (replayed,) = replay.events
    assert replayed.truncated and huge.startswith(replayed.text)
    assert replay.omitted_events == 0


def knowing_unknown(provider_url: str) -> str:
    """The test definition, also turning bodies of method "unknown" into messages."""
    doc = json.loads(definition(provider_url))
    unknown = {**SEED_MODELS[0], "event_key": "unknown"}
    doc["Webhook"] = [*SEED_MODELS, unknown]
    return json.dumps(doc)


async def test_a_replay_reply_leaves_out_events_past_the_limit_and_says_how_many(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True, webhook_max_body=6 * 1024 * 1024)
    path, _ = await big_events(gateway, provider, http, 0)
    texts = [str(n) * BIG for n in range(5)]
    await post(http, gateway, path, [{**message(text), "method": "unknown"} for text in texts])
    page = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    (webhook,) = page.webhooks

    await gateway.register(knowing_unknown(provider.url))
    replay = await gateway.stub.ReplayWebhook(gateway_pb2.ReplayWebhookRequest(id=webhook.id))

    assert replay.ByteSize() < DEFAULT_LIMIT
    assert 0 < len(replay.events) < 5
    assert replay.omitted_events == 5 - len(replay.events)
    assert [e.text for e in replay.events] == texts[: len(replay.events)]
    after = replay.events[-1].cursor
    rest = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(after_cursor=after))
    assert [e.text for e in rest.events] == texts[len(replay.events) :]


async def test_integrations_and_installations_list_by_size(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway: Gateway = await start_gateway()
    # Definitions are at most 1 MiB; an Integration carries the text twice (parsed and as is).
    note = {"name": "note", "secret": False, "description": "d" * 450_000, "default": "v" * 450_000}
    for n in range(3):
        properties = ["API key", note]
        await gateway.register(definition(provider.url, id=f"big-{n}", properties=properties))
    for n in range(3):
        await gateway.enable(
            "big-0",
            org=f"org-{n}",
            numbers={f"+1555000111{n}": []},
            properties={"API key": "k", "note": str(n) * 1_500_000},
        )

    first = await gateway.stub.ListIntegrations(gateway_pb2.ListIntegrationsRequest())
    assert 0 < len(first.integrations) < 3 and first.next_page_token
    installations = await gateway.stub.ListInstallations(gateway_pb2.ListInstallationsRequest())
    assert 0 < len(installations.installations) < 3 and installations.next_page_token

    target = f"127.0.0.1:{gateway.port}"
    assert await run_cli("integrations", "--json", "--target", target) == 0
    listed = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(listed) == ["big-0", "big-1", "big-2"]
    assert await run_cli("installations", "--json", "--page-size", "2", "--target", target) == 0
    orgs = [json.loads(line)["orgId"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(orgs) == ["org-0", "org-1", "org-2"]
