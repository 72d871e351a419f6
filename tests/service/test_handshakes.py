"""Chat platforms over real sockets (docs/format.md, "Addresses" and "Verification handshakes"):
Meta's GET verification answered with its challenge only for the installation's verify token,
Slack's signed ``url_verification`` answered with its challenge, and a Telegram-like bot whose
addresses are platform ids — kept verbatim in its numbers, its inbound events and its sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider
from server.sidecar import GrpcIngestForwarder, SidecarServer, build_sidecar_app

from .conftest import Gateway, GatewayFactory, definition, rpc_details

BOT_ID = "5551234567"  # a bot's id: ten digits, which a US default region would read as a phone
GROUP_CHAT = "-1001234567890"  # a group chat's id: its sign is part of it


def _path(installation: gateway_pb2.Installation) -> str:
    return installation.webhook_url.split("127.0.0.1:0", 1)[1]


def _meta(provider_url: str) -> str:
    doc = json.loads(
        definition(
            provider_url, id="meta-like", properties=["API key", "Verify token", "App secret"]
        )
    )
    doc["WebhookAuth"] = {
        "type": "hmac",
        "header": "X-Hub-Signature-256",
        "prefix": "sha256=",
        "secret": "$App secret$",
    }
    doc["Handshake"] = [
        {
            "request_method": "GET",
            "request_parameters": {
                "hub.mode": "subscribe",
                "hub.verify_token": "$verify_token$",
                "hub.challenge": "$challenge$",
            },
            "require": {"verify_token": "$Verify token$"},
            "answer": {"content_type": "text/plain", "body": "$challenge$"},
            "signed": False,
        }
    ]
    return json.dumps(doc)


async def _get(http: aiohttp.ClientSession, url: str, query: dict[str, str]) -> tuple[int, bytes]:
    async with http.get(url, params=query) as answer:
        return answer.status, await answer.read()


async def test_meta_get_verification_answers_the_challenge_for_the_right_token(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await gateway.register(_meta(provider.url))
    installation = await gateway.enable(
        "meta-like",
        properties={"API key": "k", "Verify token": "tok-3f9", "App secret": "s3cret"},
    )
    url = f"http://127.0.0.1:{gateway.server.http_port}{_path(installation)}"
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    async with aiohttp.ClientSession() as http:
        # unsigned, as Meta sends it: the WebhookAuth is not asked for (the model says so)
        right = await _get(http, url, {**query, "hub.verify_token": "tok-3f9"})
        wrong = await _get(http, url, {**query, "hub.verify_token": "tok-guess"})
        # a body that is not the handshake still needs its signature
        async with http.post(url, json={"object": "page"}) as unsigned:
            assert unsigned.status == 401
        # through the per-integration URL no installation's token can be checked
        shared = f"http://127.0.0.1:{gateway.server.http_port}/webhooks/meta-like"
        anyone = await _get(http, shared, {**query, "hub.verify_token": "tok-3f9"})
    assert right == (200, b"1158201444")
    assert wrong[0] == 403 and b"1158201444" not in wrong[1]
    assert anyone[0] == 403 and b"1158201444" not in anyone[1]
    # a handshake is no event
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=100))
    assert list(listed.events) == []
    # the refused one is kept with its reason, never repeating a token
    kept = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    refused = [w for w in kept.webhooks if "handshake" in w.reason]
    assert len(refused) == 2
    assert {w.kind for w in refused} == {gateway_pb2.UnmatchedWebhook.UNAUTHENTICATED}
    assert not any("tok-" in w.reason for w in refused)


def _slack(provider_url: str) -> str:
    doc = json.loads(definition(provider_url, id="slack-like", properties=["API key", "Signing"]))
    doc["WebhookAuth"] = {
        "type": "hmac",
        "header": "X-Slack-Signature",
        "prefix": "v0=",
        "secret": "$Signing$",
        "string_to_sign": "v0:$timestamp$:$body$",
        "timestamp_header": "X-Slack-Request-Timestamp",
    }
    doc["Handshake"] = [
        {
            "request_method": "POST",
            "request_parameters": {"type": "url_verification", "challenge": "$challenge$"},
            "answer": {"content_type": "application/json", "body": '{"challenge": "$challenge$"}'},
        }
    ]
    return json.dumps(doc)


def _slack_headers(secret: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
    }


async def test_slack_url_verification_is_answered_with_its_challenge_when_signed(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await gateway.register(_slack(provider.url))
    installation = await gateway.enable("slack-like", properties={"API key": "k", "Signing": "sg"})
    url = f"http://127.0.0.1:{gateway.server.http_port}{_path(installation)}"
    body = json.dumps(
        {"token": "Jhj5dZrVaK7", "challenge": 'p"3eZ', "type": "url_verification"}
    ).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers=_slack_headers("sg", body)) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"] == "application/json"
            assert json.loads(await answer.read()) == {"challenge": 'p"3eZ'}
        # a signed handshake is not answered without its signature
        async with http.post(url, data=body, headers=_slack_headers("other", body)) as forged:
            assert forged.status == 401
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=100))
    assert list(listed.events) == []


def _bot(provider_url: str) -> str:
    doc = json.loads(
        definition(
            provider_url,
            id="bot-like",
            parameters={"chat_id": "$to$", "text": "$content$", "bot": "$from$"},
            response_map={"data": {"id": "$messageid$"}},
            send_file=False,
        )
    )
    doc["addresses"] = "id"
    doc["Webhook"] = [
        {
            "event_key": "update",
            "event_type": "message",
            "request_method": "POST",
            "request_parameters": {
                "update_id": "$update$",
                "message": {
                    "message_id": "$messageid$",
                    "chat": {"id": "$from$"},
                    "text": "$content$",
                    "bot": "$to?$",
                },
            },
            "keep": ["update"],
        },
        {
            "event_key": "blocked",
            "event_type": "optedOut",
            "request_method": "POST",
            "request_parameters": {
                "my_chat_member": {
                    "chat": {"id": "$from$"},
                    "new_chat_member": {"status": "kicked"},
                    "bot": "$to?$",
                }
            },
        },
    ]
    return json.dumps(doc)


async def test_a_bot_keeps_platform_ids_verbatim_and_takes_its_inbound_messages(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await gateway.register(_bot(provider.url))
    installation = await gateway.enable("bot-like", numbers={BOT_ID: ["101"]}, region="US")
    # the bot's id is its installation's "number", as written: not +15551234567
    assert [n.number for n in installation.numbers] == [BOT_ID]
    url = f"http://127.0.0.1:{gateway.server.http_port}{_path(installation)}"
    update: dict[str, Any] = {
        "update_id": 10001,
        "message": {"message_id": 7, "chat": {"id": int(GROUP_CHAT)}, "text": "hi bot"},
    }
    async with aiohttp.ClientSession() as http, http.post(url, json=update) as answer:
        assert answer.status == 200
    listed = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=100))
    [event] = listed.events
    # the message carries no `to`: the installation's own address is its `to`
    assert getattr(event, "from") == GROUP_CHAT
    assert event.to == BOT_ID
    assert list(event.users) == ["101"]
    # and the bot answers the chat: `from` is found as written, `to` is sent as given
    reply = await gateway.send(**{"from": BOT_ID}, to=GROUP_CHAT, text="hello chat")
    assert reply.provider_message_id
    [sent] = provider.state.requests_to("/messages")
    assert sent.json == {"chat_id": GROUP_CHAT, "text": "hello chat", "bot": BOT_ID}


async def test_a_separate_sidecar_sends_the_same_handshake_answer(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    core: Gateway = await start_gateway(sidecar=True)
    await core.register(_meta(provider.url))
    installation = await core.enable(
        "meta-like",
        properties={"API key": "k", "Verify token": "tok-3f9", "App secret": "s3cret"},
    )
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{core.port}", timeout_s=5.0)
    app = build_sidecar_app(
        forwarder, public_url="http://127.0.0.1:0", max_body=1 << 20, request_timeout_s=10
    )
    sidecar = SidecarServer(app, "127.0.0.1", 0)
    await sidecar.start()
    query = {"hub.mode": "subscribe", "hub.challenge": "C-77", "hub.verify_token": "tok-3f9"}
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{sidecar.port}{_path(installation)}"
            async with http.get(url, params=query) as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"] == "text/plain"
                assert await answer.read() == b"C-77"
    finally:
        await forwarder.aclose()
        await sidecar.aclose()


async def test_a_user_who_blocks_the_bot_is_opted_out_under_their_id(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await gateway.register(_bot(provider.url))
    installation = await gateway.enable("bot-like", numbers={BOT_ID: ["101"]}, region="US")
    url = f"http://127.0.0.1:{gateway.server.http_port}{_path(installation)}"
    user = "2025550123"  # a user's id, which a US region would read as +12025550123
    blocked = {
        "my_chat_member": {"chat": {"id": int(user)}, "new_chat_member": {"status": "kicked"}}
    }
    async with aiohttp.ClientSession() as http, http.post(url, json=blocked) as answer:
        assert answer.status == 200
    kept = await gateway.stub.ListOptOuts(
        gateway_pb2.ListOptOutsRequest(installation_id=installation.id)
    )
    assert [(getattr(o, "from"), o.to) for o in kept.opt_outs] == [(BOT_ID, user)]
    # the send to them is refused before it reaches the provider, found under the same id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send(**{"from": BOT_ID}, to=user, text="still there?")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(refused.value)["error_info"].reason == "RECIPIENT_OPTED_OUT"
    assert provider.state.requests_to("/messages") == []
    # and cleared by the same id as written
    cleared = await gateway.stub.ClearOptOut(
        gateway_pb2.ClearOptOutRequest(installation_id=installation.id, to=user, **{"from": BOT_ID})
    )
    assert cleared.cleared
