"""Media end to end over real sockets (docs/media.md): an inbound message's files are fetched
from the fake provider — with the definition's media credentials, through the outbound policy,
under the caps — kept, and served back at signed URLs by the sidecar and by GetMedia; an upload
is sent with SendFile at a signed URL the provider fetches.

The suite runs on the files under the data directory and on moto's S3 server
(``MSGBRIDGE_TEST_BLOBS=s3``), and on SQLite or PostgreSQL as the service tests do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider
from server.sidecar import GrpcIngestForwarder, GrpcMediaReader, SidecarServer, build_sidecar_app
from tests.media_support import MotoS3, blob_store_kind, start_moto_s3

from .conftest import TEST_DATABASE, Gateway, GatewayFactory, definition, rpc_details
from .test_inbound import SEED_WEBHOOKS, Subscriber, hook_path, post

E = gateway_pb2.Event

# A PNG's first bytes, whatever the provider calls it.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 20
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(1000)
BASIC = "Basic " + base64.b64encode(b"key-123:").decode()


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3 | None]:
    """moto's S3 server on 127.0.0.1 when the suite runs on S3 (``MSGBRIDGE_TEST_BLOBS=s3``)."""
    if blob_store_kind() != "s3":
        yield None
        return
    moto = start_moto_s3()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
async def media_gateway(
    start_gateway: GatewayFactory, moto_s3: MotoS3 | None, monkeypatch: pytest.MonkeyPatch
) -> Gateway:
    gateway: Gateway = await start_gateway(
        sidecar=True,
        media_fetch=True,
        media_fetch_timeout_s=2.0,
        **media_store(moto_s3, monkeypatch),
    )
    return gateway


def media_store(moto: MotoS3 | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The settings that keep files in a new bucket of moto's server (credentials from the
    AWS_* environment, as in production); none for files under the data directory."""
    if moto is None:
        return {}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_access_key)
    return {
        "media_store": f"s3://{moto.new_bucket()}/media",
        "media_s3_endpoint": moto.endpoint_url,
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def media_definition(provider_url: str, **media: Any) -> str:
    doc = json.loads(definition(provider_url))
    doc["Webhook"] = SEED_WEBHOOKS
    doc["Media"] = media or {"auth": {"type": "Basic", "username": "$API key$", "password": ""}}
    return json.dumps(doc)


def mms(url: str, text: str = "a file") -> dict[str, Any]:
    return {
        "method": "file",
        "params": {"from": "+15557654321", "to": "+15550001111", "text": text, "url": url},
    }


def local(gateway: Gateway, url: str) -> str:
    """A gateway URL (made with the configured public URL, port 0 here) on the sidecar's port."""
    parts = urlsplit(url)
    return f"http://127.0.0.1:{gateway.server.http_port}{parts.path}?{parts.query}"


async def one_event(gateway: Gateway, http: aiohttp.ClientSession, url: str) -> gateway_pb2.Event:
    installation = (
        await gateway.stub.ListInstallations(gateway_pb2.ListInstallationsRequest())
    ).installations[0]
    subscriber = Subscriber(gateway, gateway_pb2.StreamEventsRequest(earliest=True))
    try:
        assert (await post(http, gateway, hook_path(installation), mms(url)))[0] == 200
        (event,) = await subscriber.wait_for(1, within_s=20)
    finally:
        await subscriber.close()
    return event


async def get_media(gateway: Gateway, media_id: str) -> tuple[gateway_pb2.MediaInfo, bytes]:
    info = gateway_pb2.MediaInfo()
    body = bytearray()
    async for part in gateway.stub.GetMedia(
        gateway_pb2.GetMediaRequest(org_id="org-1", media_id=media_id)
    ):
        if part.HasField("info"):
            info = part.info
        else:
            body += part.chunk
    return info, bytes(body)


async def test_media_that_needs_the_accounts_credentials_is_fetched_kept_and_served(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url))
    await media_gateway.enable("acme-sms")
    # The provider calls it text/plain; the bytes say PNG.
    provider.state.script(
        "/media/1",
        Answer(body=PNG, headers=(("Content-Type", "text/plain"),), authorization=BASIC),
    )
    event = await one_event(media_gateway, http, provider.url + "/media/1")
    assert event.type == E.MMS and list(event.media_urls) == [provider.url + "/media/1"]
    (item,) = event.media
    assert (item.original_url, item.error) == (provider.url + "/media/1", "")
    assert (item.content_type, item.size) == ("image/png", len(PNG))
    assert item.sha256 == hashlib.sha256(PNG).hexdigest()
    assert item.url and item.url_expires_at.seconds > 0
    (fetch,) = provider.state.requests_to("/media/1")
    assert dict(fetch.headers)["Authorization"] == BASIC

    async with http.get(local(media_gateway, item.url)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert int(response.headers["Content-Length"]) == len(PNG)
        assert await response.read() == PNG
    async with http.get(
        local(media_gateway, item.url), headers={"Range": "bytes=8-15"}
    ) as response:
        assert response.status == 206
        assert await response.read() == PNG[8:16]
    info, body = await get_media(media_gateway, item.media_id)
    assert (info.media_id, info.content_type, info.size, body) == (
        item.media_id,
        "image/png",
        len(PNG),
        PNG,
    )


async def test_a_url_that_expires_is_kept_while_it_works(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/once", Answer(body=JPEG), Answer(status=404, text="expired"))
    event = await one_event(media_gateway, http, provider.url + "/media/once")
    (item,) = event.media
    assert item.content_type == "image/jpeg" and not item.error
    async with http.get(provider.url + "/media/once") as response:
        assert response.status == 404  # the provider's URL is gone
    async with http.get(local(media_gateway, item.url)) as response:
        assert (response.status, await response.read()) == (200, JPEG)


async def test_a_redirect_to_a_private_address_is_refused_and_the_event_released(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")
    provider.state.script(
        "/media/r", Answer(status=302, headers=(("Location", "http://10.1.2.3/secret.png"),))
    )
    event = await one_event(media_gateway, http, provider.url + "/media/r")
    (item,) = event.media
    assert item.error.startswith("FETCH_REFUSED") and not item.media_id and not item.url
    assert list(event.media_urls) == [provider.url + "/media/r"]


async def test_an_oversized_file_is_refused_and_the_event_released_with_the_error(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,
    moto_s3: MotoS3 | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = await start_gateway(
        sidecar=True,
        media_fetch=True,
        media_max_item_bytes=4096,
        **media_store(moto_s3, monkeypatch),
    )
    await gateway.register(media_definition(provider.url, auth="none"))
    await gateway.enable("acme-sms")
    provider.state.script("/media/big", Answer(body=PNG * 4))
    event = await one_event(gateway, http, provider.url + "/media/big")
    (item,) = event.media
    assert item.error.startswith("MEDIA_TOO_LARGE") and not item.media_id


async def test_a_type_the_definition_does_not_take_is_refused(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(
        media_definition(provider.url, auth="none", content_types=["image/jpeg"])
    )
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/p", Answer(body=PNG))
    event = await one_event(media_gateway, http, provider.url + "/media/p")
    (item,) = event.media
    assert item.error == "MEDIA_TYPE_NOT_ALLOWED: image/png"


async def test_a_failing_fetch_is_retried_until_it_works(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/flaky", Answer(status=503), Answer(body=JPEG))
    event = await one_event(media_gateway, http, provider.url + "/media/flaky")
    (item,) = event.media
    assert item.content_type == "image/jpeg" and not item.error
    assert len(provider.state.requests_to("/media/flaky")) == 2


async def test_the_webhook_is_answered_before_the_fetch_and_a_restart_fetches_it(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,
    moto_s3: MotoS3 | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process stops (as if killed: its fetch in flight is abandoned, its lease kept) after
    the webhook was answered and before the file came; the next process fetches it once its
    lease ends and releases the event once."""
    store = media_store(moto_s3, monkeypatch)
    first = await start_gateway(sidecar=True, media_fetch=True, media_fetch_timeout_s=1.0, **store)
    await first.register(media_definition(provider.url, auth="none"))
    installation = await first.enable("acme-sms")
    provider.state.script("/media/slow", Answer(body=JPEG, delay_s=30), Answer(body=JPEG))
    answered = await post(http, first, hook_path(installation), mms(provider.url + "/media/slow"))
    assert answered[0] == 200
    async with asyncio.timeout(10):
        await provider.state.wait_for_requests(1, path="/media/slow")
    await first.channel.close()
    await first.server.stop(0)
    second = await start_gateway(sidecar=True, media_fetch=True, media_fetch_timeout_s=1.0, **store)
    subscriber = Subscriber(second, gateway_pb2.StreamEventsRequest(earliest=True))
    try:
        (event,) = await subscriber.wait_for(1, within_s=30)
        await asyncio.sleep(0.5)
        assert len(subscriber.events) == 1
    finally:
        await subscriber.close()
    (item,) = event.media
    assert item.content_type == "image/jpeg" and not item.error


async def test_an_upload_is_sent_at_a_signed_url_the_provider_fetches(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    moto_s3: MotoS3 | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The provider fetches the file from the URL it is given: the public URL must be the
    # sidecar's real address here.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = await start_gateway(
        sidecar=True,
        http_listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}",
        **media_store(moto_s3, monkeypatch),
    )
    await gateway.register(media_definition(provider.url))
    await gateway.enable("acme-sms")
    provider.state.fetch_files_from = "media_url"

    async def parts() -> AsyncIterator[gateway_pb2.UploadMediaRequest]:
        yield gateway_pb2.UploadMediaRequest(
            start=gateway_pb2.UploadMediaRequest.Start(org_id="org-1", filename="../../x.png")
        )
        for at in range(0, len(PNG), 1000):
            yield gateway_pb2.UploadMediaRequest(chunk=PNG[at : at + 1000])

    info = await gateway.stub.UploadMedia(parts())
    assert (info.content_type, info.size) == ("image/png", len(PNG))
    request = gateway_pb2.SendFileRequest(
        org_id="org-1", to="+15557654321", media_id=info.media_id, text="look"
    )
    setattr(request, "from", "+15550001111")
    reply = await gateway.stub.SendFile(request)
    assert reply.state == gateway_pb2.Message.SENT
    (sent,) = provider.state.requests_to("/messages")
    media_url = json.loads(sent.body)["media_url"]
    assert media_url.startswith(f"http://127.0.0.1:{port}/media/{info.media_id}?")
    async with asyncio.timeout(10):
        await provider.state.fetches_done()
    (fetched,) = provider.state.fetched
    assert (fetched.url, fetched.status, fetched.body) == (media_url, 200, PNG)


async def test_an_expired_or_forged_signature_is_not_found(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/f", Answer(body=JPEG))
    event = await one_event(media_gateway, http, provider.url + "/media/f")
    url = local(media_gateway, event.media[0].url)
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&"))
    base = f"http://127.0.0.1:{media_gateway.server.http_port}{parts.path}"
    forged = {**query, "s": query["s"][:-2] + ("AA" if not query["s"].endswith("AA") else "BB")}
    expired = {**query, "e": "1000"}
    later = {**query, "e": str(int(query["e"]) + 1)}
    for changed in (forged, expired, later):
        async with http.get(base, params=changed) as response:
            assert response.status == 404
    other = parts.path[:-1] + ("0" if not parts.path.endswith("0") else "1")
    async with http.get(
        f"http://127.0.0.1:{media_gateway.server.http_port}{other}?{parts.query}"
    ) as r:
        assert r.status == 404


async def test_get_media_of_another_organisation_is_not_found(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/o", Answer(body=JPEG))
    event = await one_event(media_gateway, http, provider.url + "/media/o")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in media_gateway.stub.GetMedia(
            gateway_pb2.GetMediaRequest(org_id="org-2", media_id=event.media[0].media_id)
        ):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert rpc_details(caught.value)["error_info"].reason == "MEDIA_NOT_FOUND"


async def test_only_the_first_twenty_files_of_a_message_are_fetched(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    doc = json.loads(media_definition(provider.url, auth="none"))
    doc["Webhook"] = [
        {
            "event_key": "mms",
            "event_type": "mms",
            "request_method": "POST",
            "request_parameters": {"from": "$from$", "to": "$to$", "media": [{"url": "$url$"}]},
        }
    ]
    await media_gateway.register(json.dumps(doc))
    installation = await media_gateway.enable("acme-sms")
    provider.state.script("*", Answer(body=JPEG))
    urls = [f"{provider.url}/media/{n}" for n in range(22)]
    body = {"from": "+15557654321", "to": "+15550001111", "media": [{"url": u} for u in urls]}
    subscriber = Subscriber(media_gateway, gateway_pb2.StreamEventsRequest(earliest=True))
    try:
        assert (await post(http, media_gateway, hook_path(installation), body))[0] == 200
        (event,) = await subscriber.wait_for(1, within_s=30)
    finally:
        await subscriber.close()
    assert [item.original_url for item in event.media] == urls
    assert all(item.media_id and not item.error for item in event.media[:20])
    assert all(item.error.startswith("MEDIA_TOO_MANY") for item in event.media[20:])
    assert len([r for r in provider.state.requests if r.path.startswith("/media/")]) == 20


async def test_a_separate_sidecar_serves_files_the_core_signed(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    """``msgbridge sidecar --core``: the edge sidecar holds no key and no store; it asks the
    core's ReadMedia, which checks the signature (docs/media.md, "Serving")."""
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/edge", Answer(body=PNG))
    event = await one_event(media_gateway, http, provider.url + "/media/edge")
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{media_gateway.port}", timeout_s=5.0)
    app = build_sidecar_app(
        forwarder,
        public_url="http://127.0.0.1:0",
        max_body=1 << 20,
        request_timeout_s=30,
        media=GrpcMediaReader(forwarder),
    )
    edge = SidecarServer(app, "127.0.0.1", 0)
    await edge.start()
    try:
        parts = urlsplit(event.media[0].url)
        url = f"http://127.0.0.1:{edge.port}{parts.path}?{parts.query}"
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/png"
            assert await response.read() == PNG
        async with http.get(url, headers={"Range": "bytes=-16"}) as response:
            assert (response.status, await response.read()) == (206, PNG[-16:])
        forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        async with http.get(forged) as response:
            assert response.status == 404
    finally:
        await edge.aclose()
        await forwarder.aclose()


async def test_a_hosted_files_url_outlives_the_queue_and_the_send_time(
    media_gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")

    async def parts() -> AsyncIterator[gateway_pb2.UploadMediaRequest]:
        yield gateway_pb2.UploadMediaRequest(
            start=gateway_pb2.UploadMediaRequest.Start(org_id="org-1", filename="a.jpg")
        )
        yield gateway_pb2.UploadMediaRequest(chunk=JPEG)

    info = await media_gateway.stub.UploadMedia(parts())
    send_at = int(time.time()) + 30 * 86400  # a month on: beyond the URL's own time
    request = gateway_pb2.SendFileRequest(org_id="org-1", to="+15557654321", media_id=info.media_id)
    setattr(request, "from", "+15550001111")
    request.options.send_at.FromSeconds(send_at)
    reply = await media_gateway.stub.SendFile(request)
    assert reply.state == gateway_pb2.Message.QUEUED
    message = await media_gateway.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=reply.message_id)
    )
    expires = int(dict(p.split("=", 1) for p in urlsplit(message.media_url).query.split("&"))["e"])
    max_age = media_gateway.server.settings.send_max_age_s
    assert expires >= send_at + max_age
    assert message.media_url.startswith("http://127.0.0.1:0/media/" + info.media_id)


async def kept_exchanges(gateway: Gateway, columns: str) -> list[tuple[Any, ...]] | None:
    """``columns`` of every row of the exchange log, oldest first; None on PostgreSQL (the rows
    are read from the SQLite file)."""
    exchanges = gateway.server.exchanges
    assert exchanges is not None
    await exchanges.flush()
    if TEST_DATABASE != "sqlite":
        return None
    database = gateway.server.settings.data_dir / "msgbridge.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        query = f"SELECT {columns} FROM provider_exchanges ORDER BY started_at"
        rows: list[tuple[Any, ...]] = db.execute(query).fetchall()
    return rows


async def test_a_fetch_is_kept_in_the_exchange_log_with_its_credentials_masked(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url))
    await media_gateway.enable("acme-sms")
    provider.state.script("/media/1", Answer(body=PNG, authorization=BASIC))
    event = await one_event(media_gateway, http, provider.url + "/media/1")
    assert event.media[0].error == ""
    rows = await kept_exchanges(
        media_gateway,
        "kind, message_id, method, url, status, request_headers_json, response_body",
    )
    if rows is None:
        return  # the rows are read from the SQLite file
    [(kind, message_id, method, url, status, headers, body)] = rows
    assert (kind, message_id, method, status, body) == ("media_fetch", None, "GET", 200, "")
    assert url == provider.url + "/media/1"
    assert json.loads(headers) == [["Authorization", "***"]]
    assert BASIC.split()[1] not in repr(rows) and "key-123" not in repr(rows)
