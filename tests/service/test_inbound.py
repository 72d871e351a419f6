"""Inbound end to end over real sockets: provider → sidecar → ingest → store → StreamEvents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import SEED_MODELS, Gateway, GatewayFactory, definition

E = gateway_pb2.Event

SEED_WEBHOOKS: list[dict[str, Any]] = [
    {
        "event_key": "delivered",
        "event_type": "messageDelivered",
        "request_method": "POST",
        "request_parameters": {"method": "$event_key$", "params": {"messageid": "$messageid$"}},
    },
    {
        "event_key": "file",
        "event_type": "mms",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "text": "$text$", "url": "$url$"},
        },
    },
    *SEED_MODELS,
]


def inbound_definition(provider_url: str, webhooks: list[dict[str, Any]], **extra: Any) -> str:
    doc = json.loads(definition(provider_url))
    doc["Webhook"] = webhooks
    doc.update(extra)
    return json.dumps(doc)


@pytest.fixture
async def inbound(start_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await start_gateway(sidecar=True, receipt_wait_s=30.0)
    return gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Subscriber:
    """Collects StreamEvents in the background."""

    def __init__(self, gateway: Gateway, request: gateway_pb2.StreamEventsRequest) -> None:
        self.events: list[gateway_pb2.Event] = []
        self._call = gateway.stub.StreamEvents(request)
        self._task = asyncio.create_task(self._run())
        self._arrived = asyncio.Event()

    async def _run(self) -> None:
        try:
            async for batch in self._call:
                self.events.extend(batch.events)
                self._arrived.set()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise

    async def wait_for(self, count: int, within_s: float = 10.0) -> list[gateway_pb2.Event]:
        async with asyncio.timeout(within_s):
            while len(self.events) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.events

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def subscribe_from_now(gateway: Gateway) -> Subscriber:
    """A subscriber "from now", returned once the service has taken its starting position (the
    newest cursor, read when the stream starts): every event stored after that reaches it."""
    store = gateway.server.store
    taken = asyncio.Event()
    newest = store.latest_cursor

    async def latest_cursor() -> int:
        cursor = await newest()
        taken.set()
        return cursor

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "latest_cursor", latest_cursor)
        subscriber = Subscriber(gateway, gateway_pb2.StreamEventsRequest())
        async with asyncio.timeout(10):
            await taken.wait()
    return subscriber


async def post(
    http: aiohttp.ClientSession,
    gateway: Gateway,
    path: str,
    body: bytes | str | dict[str, Any] | list[Any],
    *,
    content_type: str = "application/json",
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}"
    sent = {"Content-Type": content_type, **(headers or {})}
    async with http.request(method, url, data=data, headers=sent) as r:
        return r.status, await r.text()


def hook_path(installation: gateway_pb2.Installation) -> str:
    return installation.webhook_url.split("127.0.0.1:0", 1)[1]


async def test_seed_webhooks_become_events_on_the_stream(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await inbound.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await inbound.enable(
        "acme-sms", numbers={"+61123456789": ["101", "102"], "+15550001111": []}
    )
    subscriber = await subscribe_from_now(inbound)
    path = hook_path(installation)
    message = {
        "method": "message",
        "params": {"from": "+61855555555", "to": "+61123456789", "content": "Hello there!"},
    }
    file = {
        "method": "file",
        "params": {
            "from": "+61855555555",
            "to": "+61123456789",
            "text": "Sending a file",
            "url": "https://your.server.com/files/8a8d89798as9ud.jpeg",
        },
    }
    assert await post(http, inbound, path, message) == (200, "")
    assert (await post(http, inbound, path, file))[0] == 200
    events = await subscriber.wait_for(2)
    await subscriber.close()

    first, second = events
    assert first.type == E.MESSAGE
    assert (getattr(first, "from"), first.to, first.text) == (
        "+61855555555",
        "+61123456789",
        "Hello there!",
    )
    assert list(first.users) == ["101", "102"]
    assert first.org_id == "org-1" and first.installation_id == installation.id
    assert first.integration_id == "acme-sms"
    assert second.type == E.MMS
    assert second.text == "Sending a file"
    assert list(second.media_urls) == ["https://your.server.com/files/8a8d89798as9ud.jpeg"]
    assert second.cursor > first.cursor


async def test_send_then_receipt_carries_our_message_id_and_metadata(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await inbound.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await inbound.enable("acme-sms")
    reply = await inbound.send(metadata={"ticket": "T-9"})
    subscriber = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    receipt = {"method": "delivered", "params": {"messageid": reply.provider_message_id}}
    assert (await post(http, inbound, hook_path(installation), receipt))[0] == 200
    (event,) = await subscriber.wait_for(1)
    await subscriber.close()
    assert event.type == E.MESSAGE_DELIVERED
    assert event.message_id == reply.message_id
    assert dict(event.metadata) == {"ticket": "T-9"}
    message = await inbound.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=reply.message_id)
    )
    assert message.state == gateway_pb2.Message.DELIVERED


async def test_receipt_that_overtakes_the_send_reply_is_correlated(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await inbound.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await inbound.enable("acme-sms")
    provider.state.script("/messages", Answer(json={"data": {"id": "pm-early"}}, delay_s=1.0))
    subscriber = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    send = asyncio.create_task(inbound.send(metadata={"k": "v"}))
    async with asyncio.timeout(10):
        await provider.state.wait_for_requests(1)
    receipt = {"method": "delivered", "params": {"messageid": "pm-early"}}
    # Answered 2xx at once: the receipt is stored (held), not lost.
    assert (await post(http, inbound, hook_path(installation), receipt))[0] == 200
    reply = await send
    (event,) = await subscriber.wait_for(1)
    await subscriber.close()
    assert event.message_id == reply.message_id
    assert dict(event.metadata) == {"k": "v"}


async def test_form_get_batch_and_several_media(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    webhooks = [
        {
            "event_key": "sms",
            "event_type": "message",
            "request_method": "POST",
            "request_parameters": {
                "From": "$from$",
                "To": "$to$",
                "Body": "$content$",
                "MessageSid": "$messageid$",
            },
        },
        {
            "event_key": "get",
            "event_type": "message",
            "request_method": "GET",
            "request_parameters": {"msisdn": "$from$", "to": "$to$", "text": "$content$"},
        },
        {
            "event_key": "mms",
            "event_type": "mms",
            "request_method": "POST",
            "request_parameters": {"from": "$from$", "to": "$to$", "media": [{"url": "$url$"}]},
        },
    ]
    await inbound.register(inbound_definition(provider.url, webhooks))
    installation = await inbound.enable("acme-sms")
    path = hook_path(installation)
    subscriber = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    form = "From=%2B15557654321&To=%2B15550001111&Body=Gr%C3%BC%C3%9Fe+%F0%9F%91%8B&MessageSid=SM1"
    assert (
        await post(http, inbound, path, form, content_type="application/x-www-form-urlencoded")
    )[0] == 200
    query = "?msisdn=15557654321&to=15550001111&text=hi+there"
    assert (await post(http, inbound, path + query, b"", method="GET", content_type=""))[0] == 200
    batch = [
        {
            "from": "+15557654321",
            "to": "+15550001111",
            "media": [{"url": "https://m/1.jpg"}, {"url": "https://m/2.png"}],
        },
        {"from": "+15557654322", "to": "+15550001111", "media": [{"url": "https://m/3.gif"}]},
    ]
    assert (await post(http, inbound, path, batch))[0] == 200
    events = await subscriber.wait_for(4)
    await subscriber.close()
    assert [e.type for e in events] == [E.MESSAGE, E.MESSAGE, E.MMS, E.MMS]
    assert events[0].text == "Grüße 👋" and events[0].provider_message_id == "SM1"
    assert (getattr(events[1], "from"), events[1].text) == ("15557654321", "hi there")
    assert list(events[2].media_urls) == ["https://m/1.jpg", "https://m/2.png"]
    assert list(events[3].media_urls) == ["https://m/3.gif"]
    assert all(list(e.users) == ["101"] for e in events)


async def test_provider_retry_creates_no_second_event(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    webhooks = [
        {
            "event_key": "sms",
            "event_type": "message",
            "request_method": "POST",
            "request_parameters": {
                "id": "$messageid$",
                "from": "$from$",
                "to": "$to$",
                "text": "$content$",
            },
        }
    ]
    await inbound.register(inbound_definition(provider.url, webhooks))
    installation = await inbound.enable("acme-sms")
    body = {"id": "in-1", "from": "+15557654321", "to": "+15550001111", "text": "once"}
    for _ in range(3):
        assert (await post(http, inbound, hook_path(installation), body))[0] == 200
    # The same message inside a batch with a new one: only the new one is produced.
    batch = [body, {**body, "id": "in-2", "text": "twice"}]
    assert (await post(http, inbound, hook_path(installation), batch))[0] == 200
    listed = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())
    assert [e.text for e in listed.events] == ["once", "twice"]


async def test_an_id_in_a_header_dedupes_retries_and_survives_replay(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    # Commio-style: a form body without an id; the id is the X-Sms-Guid header (ext).
    sms = {
        "event_key": "sms",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "type": "sms",
            "from": "$from$",
            "to": "$to$",
            "message": "$content$",
        },
    }
    await inbound.register(inbound_definition(provider.url, [sms]))
    installation = await inbound.enable("acme-sms")
    path = hook_path(installation)
    form = "application/x-www-form-urlencoded"
    body = "from=15557654321&to=15550001111&type=sms&message=once"
    # Without a header model an id-less body is never a duplicate: the retry gives a 2nd event.
    for _ in range(2):
        status, _ = await post(http, inbound, path, body, content_type=form)
        assert status == 200
    with_id = dict(sms, request_headers={"X-Sms-Guid": "$messageid$"})
    await inbound.register(inbound_definition(provider.url, [with_id]))
    for guid in ("g-1", "g-1", "g-2"):
        status, _ = await post(
            http, inbound, path, body, content_type=form, headers={"x-sms-guid": guid}
        )
        assert status == 200
    listed = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())
    assert [e.provider_message_id for e in listed.events] == ["", "", "g-1", "g-2"]

    # A body kept unmatched is replayed with the headers it arrived with.
    mms = "from=15557654321&to=15550001111&type=mms&message=http://m.example/1.png"
    status, _ = await post(
        http, inbound, path, mms, content_type=form, headers={"X-Sms-Guid": "g-3"}
    )
    assert status == 200
    (kept,) = (
        await inbound.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    ).webhooks
    file = {
        "event_key": "mms",
        "event_type": "mms",
        "request_method": "POST",
        "request_parameters": {"type": "mms", "from": "$from$", "to": "$to$", "message": "$url$"},
        "request_headers": {"X-Sms-Guid": "$messageid$"},
    }
    await inbound.register(inbound_definition(provider.url, [with_id, file]))
    (event,) = (
        await inbound.stub.ReplayWebhook(gateway_pb2.ReplayWebhookRequest(id=kept.id))
    ).events
    assert (event.type, event.provider_message_id) == (E.MMS, "g-3")


async def test_unmatched_is_listed_and_replayed_after_the_fix(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await inbound.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await inbound.enable("acme-sms")
    body = {"method": "inbound", "params": {"from": "+1555", "to": "+15550001111", "content": "hi"}}
    assert (await post(http, inbound, hook_path(installation), body))[0] == 200
    listed = await inbound.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    (kept,) = listed.webhooks
    assert kept.kind == gateway_pb2.UnmatchedWebhook.UNMATCHED
    assert "message" in kept.reason and json.loads(kept.body) == body
    assert (await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())).events == []

    fixed = [dict(SEED_WEBHOOKS[2], event_key="inbound")]
    await inbound.register(inbound_definition(provider.url, fixed))
    replay = await inbound.stub.ReplayWebhook(gateway_pb2.ReplayWebhookRequest(id=kept.id))
    (event,) = replay.events
    assert event.type == E.MESSAGE and event.text == "hi"
    stored = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())
    assert [e.text for e in stored.events] == ["hi"]


async def test_bad_input_gets_the_right_status_and_stores_no_event(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sidecar=True, webhook_max_body=1024)
    await gateway.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await gateway.enable("acme-sms")
    path = hook_path(installation)
    assert (await post(http, gateway, path, "x" * 5000))[0] == 413
    assert (await post(http, gateway, path, '{"method": "message", '))[0] == 400
    assert (await post(http, gateway, "/webhooks/nope/" + path.rsplit("/", 1)[1], {}))[0] == 404
    assert (await post(http, gateway, "/webhooks/acme-sms/wrong-token", {}))[0] == 404
    assert (await post(http, gateway, "/elsewhere", {}))[0] == 404
    assert (await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest())).events == []
    # The sidecar still serves.
    ok = {"method": "message", "params": {"from": "+1", "to": "+15550001111", "content": "x"}}
    assert (await post(http, gateway, path, ok))[0] == 200


async def test_enabling_makes_the_subscribe_request(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    subscribe = {
        "request_method": "POST",
        "request_content_type": "application/json",
        "request_url": "http://$Server$:"
        + provider.url.rsplit(":", 1)[1]
        + "/ns-api/v2/subscriptions",
        "request_parameters": {
            "domain": "$Domain$",
            "user": "*",
            "model": "message",
            "post-url": "$webhook_url$",
        },
    }
    await inbound.register(
        inbound_definition(
            provider.url,
            SEED_WEBHOOKS,
            Subscribe=subscribe,
            properties=["API key", "Server", "Domain"],
        )
    )
    installation = await inbound.enable(
        "acme-sms", properties={"API key": "k", "Server": "127.0.0.1", "Domain": "acme.example"}
    )
    async with asyncio.timeout(10):
        await provider.state.wait_for_requests(1)
    (request,) = provider.state.requests
    assert request.path == "/ns-api/v2/subscriptions"
    assert request.json == {
        "domain": "acme.example",
        "user": "*",
        "model": "message",
        "post-url": installation.webhook_url,
    }
    assert dict(request.headers)["Authorization"] == "Bearer k"
    async with asyncio.timeout(5):
        while True:
            got = await inbound.stub.GetInstallation(
                gateway_pb2.GetInstallationRequest(installation_id=installation.id)
            )
            if got.subscription.state == gateway_pb2.Subscription.SUBSCRIBED:
                break
            await asyncio.sleep(0.05)


async def test_failing_subscribe_is_marked_and_retried(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await start_gateway(subscribe_retry_s=0.2)
    subscribe = {
        "request_method": "PUT",
        "request_url": provider.url + "/callbacks/$number$",
        "request_parameters": {"url": "$webhook_url$"},
    }
    await gateway.register(inbound_definition(provider.url, SEED_WEBHOOKS, Subscribe=subscribe))
    provider.state.script("/callbacks/+15550001111", Answer(status=500, text="try later"), Answer())
    installation = await gateway.enable("acme-sms")
    async with asyncio.timeout(5):
        while True:
            got = await gateway.stub.GetInstallation(
                gateway_pb2.GetInstallationRequest(installation_id=installation.id)
            )
            if got.subscription.state == gateway_pb2.Subscription.FAILED:
                assert "HTTP 500" in got.subscription.last_error
                break
            await asyncio.sleep(0.02)
    async with asyncio.timeout(5):
        while got.subscription.state != gateway_pb2.Subscription.SUBSCRIBED:
            await asyncio.sleep(0.05)
            got = await gateway.stub.GetInstallation(
                gateway_pb2.GetInstallationRequest(installation_id=installation.id)
            )
    assert [r.method for r in provider.state.requests_to("/callbacks/+15550001111")] == [
        "PUT",
        "PUT",
    ]


async def test_retention_purges_each_kind_after_its_time(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    from datetime import UTC, datetime, timedelta

    await inbound.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await inbound.enable("acme-sms")
    reply = await inbound.send()
    message = {"method": "message", "params": {"from": "+1", "to": "+15550001111", "content": "x"}}
    unmatched = {"method": "nothing"}
    for body in (message, unmatched):
        assert (await post(http, inbound, hook_path(installation), body))[0] == 200
    keeper = inbound.server.retention
    soon = await keeper.purge_once(datetime.now(UTC) + timedelta(days=8))
    assert (soon["requests"], soon["events"], soon["unmatched"], soon["messages"]) == (1, 0, 0, 0)
    later = await keeper.purge_once(datetime.now(UTC) + timedelta(days=100))
    assert (later["events"], later["unmatched"], later["messages"]) == (1, 1, 1)
    assert (await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())).events == []
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await inbound.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_webhook_failing_its_signature_gets_401_is_recorded_and_makes_no_event(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    import hashlib
    import hmac

    auth = {
        "type": "hmac",
        "algorithm": "sha256",
        "header": "X-Signature",
        "secret": "$Webhook secret$",
        "encoding": "hex",
        "signed": "body",
    }
    await inbound.register(
        inbound_definition(
            provider.url,
            SEED_WEBHOOKS,
            WebhookAuth=auth,
            properties=["API key", "Webhook secret"],
        )
    )
    installation = await inbound.enable(
        "acme-sms", properties={"API key": "k", "Webhook secret": "whsec-0123456789"}
    )
    url = f"http://127.0.0.1:{inbound.server.http_port}{hook_path(installation)}"
    body = json.dumps(
        {"method": "message", "params": {"from": "+1", "to": "+15550001111", "content": "hi"}}
    ).encode()
    good = hmac.new(b"whsec-0123456789", body, hashlib.sha256).hexdigest()
    for signature, status in (("0" * 64, 401), (good, 200)):
        headers = {"Content-Type": "application/json", "X-Signature": signature}
        async with http.post(url, data=body, headers=headers) as answer:
            assert answer.status == status
    async with http.post(url, data=body + b" ", headers=headers) as tampered:
        assert tampered.status == 401
    listed = await inbound.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    kinds = [w.kind for w in listed.webhooks]
    assert kinds == [gateway_pb2.UnmatchedWebhook.UNAUTHENTICATED] * 2
    assert "signature" in listed.webhooks[0].reason
    events = (await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest())).events
    assert [e.text for e in events] == ["hi"]
