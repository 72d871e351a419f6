"""Inbound media given as an id, over real sockets (docs/format.md, "Media given as an id";
docs/media.md): the definition's resolve request is made to the fake provider with the
installation's credentials, the file is fetched at the URL its answer gives and kept — and the
secret that URL holds (a bot token, as in Telegram's file URLs) appears in no event, no error and
no row of the exchange log."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from client._webhook_signing import sign_webhook
from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition
from .test_inbound import Subscriber, hook_path, post
from .test_media import JPEG, PNG, http, kept_exchanges, media_definition, media_gateway, moto_s3
from .test_media import one_event as media_event
from .test_stand_in import FIXTURES, install, shipped
from .test_subscribe_chain import subscription_after

__all__ = ["http", "media_gateway", "moto_s3"]  # the fixtures this module uses

TOKEN = "123456:ABC-bot-secret"
BEARER = f"Bearer {TOKEN}"

PHOTO_MODEL: dict[str, Any] = {
    "event_key": "photo",
    "event_type": "mms",
    "request_method": "POST",
    "request_parameters": {
        "message": {
            "chat": {"id": "$from$"},
            "caption": "$text?$",
            "photo": [{"file_id": "$media_id$"}],
        }
    },
}


def id_definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url, properties=["Bot token"]))
    doc["auth"] = {"type": "Bearer", "token": "$Bot token$"}
    doc["addresses"] = "id"
    doc["Webhook"] = [{**PHOTO_MODEL, "request_parameters": _with_to_optional()}]
    doc["Media"] = {
        "resolve": {
            "request_method": "GET",
            "request_url": provider_url + "/bot$Bot token$/getFile",
            "request_parameters": {"file_id": "$media_id$"},
            "response_map": {
                "ok": True,
                "result": {"file_path": "$file_path$"},
                "description": "$error$",
            },
            "download": provider_url + "/file/bot$Bot token$/$file_path$",
        }
    }
    return json.dumps(doc)


def _with_to_optional() -> dict[str, Any]:
    message = dict(PHOTO_MODEL["request_parameters"]["message"])
    message["to"] = "$to?$"
    return {"message": message}


def update(*file_ids: str) -> dict[str, Any]:
    return {
        "message": {
            "chat": {"id": 111222333},
            "caption": "look",
            "photo": [{"file_id": file_id} for file_id in file_ids],
        }
    }


async def enable(gateway: Gateway, provider: RunningFakeProvider) -> gateway_pb2.Installation:
    await gateway.register(id_definition(provider.url))
    return await gateway.enable(
        "acme-sms", properties={"Bot token": TOKEN}, numbers={"bot-1": ["101"]}
    )


async def one_event(
    gateway: Gateway, http: aiohttp.ClientSession, body: dict[str, Any]
) -> gateway_pb2.Event:
    installation = (
        await gateway.stub.ListInstallations(gateway_pb2.ListInstallationsRequest())
    ).installations[0]
    subscriber = Subscriber(gateway, gateway_pb2.StreamEventsRequest(earliest=True))
    try:
        assert (await post(http, gateway, hook_path(installation), body))[0] == 200
        (event,) = await subscriber.wait_for(1, within_s=20)
    finally:
        await subscriber.close()
    return event


def get_file(path: str) -> Answer:
    return Answer(json={"ok": True, "result": {"file_id": "x", "file_path": path}})


async def test_a_file_given_by_id_is_resolved_fetched_and_kept(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await enable(media_gateway, provider)
    provider.state.script(f"/bot{TOKEN}/getFile", get_file("photos/file_1.jpg"))
    provider.state.script(f"/file/bot{TOKEN}/photos/file_1.jpg", Answer(body=JPEG))

    event = await one_event(media_gateway, http, update("AgAD-small_1"))

    assert event.type == gateway_pb2.Event.MMS
    assert (getattr(event, "from"), event.to, event.text) == ("111222333", "bot-1", "look")
    assert list(event.media_urls) == ["media-id:AgAD-small_1"]
    (item,) = event.media
    assert (item.original_url, item.error) == ("media-id:AgAD-small_1", "")
    assert (item.content_type, item.size) == ("image/jpeg", len(JPEG))
    assert TOKEN not in str(event)
    (resolve,) = provider.state.requests_to(f"/bot{TOKEN}/getFile")
    assert (resolve.method, resolve.query) == ("GET", (("file_id", "AgAD-small_1"),))
    assert dict(resolve.headers)["Authorization"] == BEARER  # the definition's own auth
    assert len(provider.state.requests_to(f"/file/bot{TOKEN}/photos/file_1.jpg")) == 1

    rows = await kept_exchanges(media_gateway, "kind, method, url, status")
    everything = repr(await kept_exchanges(media_gateway, "*"))
    if rows is None:
        return  # the rows are read from the SQLite file
    assert rows == [
        ("media_fetch", "GET", provider.url + "/bot***/getFile?file_id=AgAD-small_1", 200),
        ("media_fetch", "GET", provider.url + "/file/bot***/photos/file_1.jpg", 200),
    ]
    assert TOKEN not in everything and "ABC-bot-secret" not in everything


async def test_a_refused_id_is_given_up_with_the_providers_reason_and_no_secret(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await enable(media_gateway, provider)
    refusal = {"ok": False, "error_code": 400, "description": f"Bad Request: bot{TOKEN} no"}
    provider.state.script(f"/bot{TOKEN}/getFile", Answer(json=refusal))

    event = await one_event(media_gateway, http, update("gone"))

    (item,) = event.media
    assert item.error.startswith("FETCH_REFUSED: the provider did not resolve the media id: ")
    assert "Bad Request" in item.error and TOKEN not in item.error
    assert not item.media_id and item.original_url == "media-id:gone"


async def test_a_resolve_that_fails_for_now_is_tried_again(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await enable(media_gateway, provider)
    provider.state.script(
        f"/bot{TOKEN}/getFile",
        Answer(status=502, text="bad gateway"),
        get_file("documents/file_7.png"),
    )
    provider.state.script(f"/file/bot{TOKEN}/documents/file_7.png", Answer(body=PNG))

    event = await one_event(media_gateway, http, update("doc-1"))

    (item,) = event.media
    assert (item.error, item.content_type) == ("", "image/png")
    assert len(provider.state.requests_to(f"/bot{TOKEN}/getFile")) == 2


async def test_without_media_fetching_the_event_names_the_ids(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sidecar=True, media_fetch=False)
    await enable(gateway, provider)

    event = await one_event(gateway, http, update("AgAD-1", "AgAD-2"))

    assert list(event.media_urls) == ["media-id:AgAD-1", "media-id:AgAD-2"]
    assert not event.media
    assert not provider.state.requests  # nothing resolved, nothing fetched


@pytest.fixture(autouse=True)
def _no_stale_scripts(provider: RunningFakeProvider) -> None:
    provider.state.clear_scripts()


async def shipped_gateway(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, name: str, subscribed: Answer
) -> tuple[Gateway, gateway_pb2.Installation, dict[str, str]]:
    """A gateway with ``integrations/<name>.json`` registered unchanged, its calls sent to the
    fake provider (the stand-in), enabled with its cases' settings and subscribed; media
    fetching on. The installation and its properties."""
    gateway = await start_gateway(
        sidecar=True,
        media_fetch=True,
        media_fetch_timeout_s=2.0,
        provider_stand_in=(f"{name}={provider.url}",),
    )
    await gateway.register(shipped(name))
    values: dict[str, Any] = install(name)
    provider.state.script("*", subscribed)
    installation = await gateway.enable(
        name,
        numbers=values["numbers"],
        properties=values["properties"],
        region=values.get("region", ""),
    )
    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.SUBSCRIBED, subscription.last_error
    provider.state.reset()
    return gateway, installation, values["properties"]


async def post_case(
    gateway: Gateway,
    http: aiohttp.ClientSession,
    installation: gateway_pb2.Installation,
    properties: dict[str, str],
    case: str,
) -> gateway_pb2.Event:
    """The body of the provider's webhook case ``case`` (``<name>/<file>``), signed as the
    provider signs it and posted: its one event, once released."""
    name, _, file = case.partition("/")
    body = json.dumps(json.loads((FIXTURES / name / "webhooks" / file).read_text())["body"])
    auth = json.loads(shipped(name)).get("WebhookAuth")
    headers = sign_webhook(
        auth,
        properties,
        method="POST",
        url=installation.webhook_url,
        headers={},
        body=body.encode(),
    )
    subscriber = Subscriber(gateway, gateway_pb2.StreamEventsRequest(earliest=True))
    try:
        path = hook_path(installation)
        assert (await post(http, gateway, path, body, headers=headers))[0] == 200
        (event,) = await subscriber.wait_for(1, within_s=20)
    finally:
        await subscriber.close()
    return event


async def test_the_shipped_telegram_definition_resolves_a_photo_at_its_stand_in(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    # integrations/telegram.json unchanged: getFile and the file URL it makes go to the stand-in
    setwebhook = Answer(json={"ok": True, "result": True})
    gateway, installation, properties = await shipped_gateway(
        start_gateway, provider, "telegram", setwebhook
    )
    token = properties["Bot token"]
    provider.state.script(f"/bot{token}/getFile", get_file("photos/file_9.jpg"))
    provider.state.script(f"/file/bot{token}/photos/file_9.jpg", Answer(body=JPEG))

    event = await post_case(
        gateway, http, installation, properties, "telegram/photo_largest_size.json"
    )

    assert list(event.media_urls) == ["media-id:AgACAgQAAxkBAAIBR2dT-x"]  # the largest size
    (item,) = event.media
    assert (item.error, item.content_type, item.size) == ("", "image/jpeg", len(JPEG))
    (resolve,) = provider.state.requests_to(f"/bot{token}/getFile")
    assert resolve.query == (("file_id", "AgACAgQAAxkBAAIBR2dT-x"),)
    assert token not in str(event)


async def test_the_shipped_whatsapp_definition_keeps_an_image_given_by_id(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    # GET /<media id> on the Graph API answers the file's URL on lookaside.fbsbx.com, fetched
    # with the same access token (docs/format.md, "Media given as an id")
    subscribed = Answer(json={"success": True})
    gateway, installation, properties = await shipped_gateway(
        start_gateway, provider, "whatsapp", subscribed
    )
    lookaside = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1003383421387256"
    provider.state.script("/v25.0/1003383421387256", Answer(json={"url": lookaside}))
    bearer = f"Bearer {properties['Access token']}"
    provider.state.script(
        "/whatsapp_business/attachments/", Answer(body=JPEG, authorization=bearer)
    )

    event = await post_case(
        gateway, http, installation, properties, "whatsapp/inbound_image_caption.json"
    )

    assert event.type == gateway_pb2.Event.MMS
    assert list(event.media_urls) == ["media-id:1003383421387256"]
    (item,) = event.media
    assert (item.error, item.content_type) == ("", "image/jpeg")
    (resolve,) = provider.state.requests_to("/v25.0/1003383421387256")
    assert dict(resolve.headers)["Authorization"] == bearer
    (fetch,) = provider.state.requests_to("/whatsapp_business/attachments/")
    assert fetch.query == (("mid", "1003383421387256"),)


async def test_an_id_named_as_a_url_is_never_resolved_without_a_resolve(
    media_gateway: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await media_gateway.register(media_definition(provider.url, auth="none"))
    await media_gateway.enable("acme-sms")

    event = await media_event(media_gateway, http, "media-id:forged")

    (item,) = event.media
    assert item.error == "FETCH_REFUSED: the definition has no Media resolve for a media id"
    assert not provider.state.requests  # nothing was called


async def test_the_shipped_360dialog_definition_keeps_an_image_through_360dialog(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    # 360dialog answers Meta's URL; the file is Meta's path and query on 360dialog's host
    gateway, installation, properties = await shipped_gateway(
        start_gateway, provider, "360dialog", Answer(json={"url": "ok"})
    )
    lookaside = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=77&ext=9&hash=A-b"
    provider.state.script("/1003383421387256", Answer(json={"url": lookaside}))
    provider.state.script("/whatsapp_business/attachments/", Answer(body=JPEG))

    event = await post_case(
        gateway, http, installation, properties, "360dialog/inbound_image_caption.json"
    )

    (item,) = event.media
    assert (item.error, item.content_type) == ("", "image/jpeg")
    key = ("D360-API-KEY", properties["API key"])
    (resolve,) = provider.state.requests_to("/1003383421387256")
    (fetch,) = provider.state.requests_to("/whatsapp_business/attachments/")
    assert key in resolve.headers and key in fetch.headers
    assert fetch.query == (("mid", "77"), ("ext", "9"), ("hash", "A-b"))
