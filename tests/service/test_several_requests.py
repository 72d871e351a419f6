"""(ext) A send of several requests end to end (docs/format.md, "Several requests per send"):
the requests the provider receives, the reply's and the message's provider ids, receipts for any
part, and a failure after some parts were sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, rpc_details
from .test_inbound import SEED_WEBHOOKS, Subscriber, hook_path, http, inbound, post

__all__ = ["http", "inbound"]  # fixtures

M = gateway_pb2.Message


def _definition(provider_url: str, **send: Any) -> str:
    request = {
        "request_method": "POST",
        "request_url": provider_url + "/messages",
        "request_parameters": {"to": "$to$", "content": "$content$", "n": "$part$/$parts$"},
        "response_map": {"data": {"id": "$messageid$"}},
        "split": {"max_length": 10},
        **send,
    }
    files = {
        "request_method": "POST",
        "request_url": provider_url + "/mms",
        "for_each": "media",
        "request_parameters": {"to": "$to$", "media": "$content$"},
        "response_map": {"data": {"id": "$messageid$"}},
        "then": {
            "only_if": {"present": "text"},
            "request_method": "POST",
            "request_url": provider_url + "/sms",
            "request_parameters": {"to": "$to$", "text": "$text$"},
            "response_map": {"data": {"id": "$messageid$"}},
        },
    }
    return json.dumps(
        {
            "id": "acme-sms",
            "name": "acme",
            "class": "sms",
            "properties": ["API key"],
            "auth": {"type": "Bearer", "token": "$API key$"},
            "API": {"SendMessage": request, "SendFile": files},
            "Webhook": SEED_WEBHOOKS,
        }
    )


def _ids(*ids: str) -> list[Answer]:
    return [Answer(json={"data": {"id": i}}) for i in ids]


def _file(*media: str, text: str = "") -> gateway_pb2.SendFileRequest:
    request = gateway_pb2.SendFileRequest(
        org_id="org-1", to="+15557654321", media_url=media[0], media_urls=media[1:], text=text
    )
    setattr(request, "from", "+15550001111")
    return request


async def _message(gateway: Gateway, message_id: str) -> gateway_pb2.Message:
    return await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=message_id))


async def test_a_long_text_is_sent_one_part_a_request_and_every_id_is_kept(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await inbound.register(_definition(provider.url))
    installation = await inbound.enable("acme-sms")
    provider.state.script("/messages", *_ids("p-1", "p-2", "p-3"))
    reply = await inbound.send(text="one two three four five")

    bodies = [json.loads(r.body) for r in provider.state.requests]
    assert [(b["content"], b["n"]) for b in bodies] == [
        ("one two ", "1/3"),
        ("three four", "2/3"),
        (" five", "3/3"),
    ]
    assert reply.provider_message_id == "p-1"
    assert list(reply.provider_message_ids) == ["p-1", "p-2", "p-3"]
    assert reply.attempts == 3
    message = await _message(inbound, reply.message_id)
    assert (message.state, list(message.provider_message_ids)) == (M.SENT, ["p-1", "p-2", "p-3"])

    # A receipt for any part finds the message; it is delivered once every part is.
    subscriber = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    for part in ("p-3", "p-1"):
        receipt = {"method": "delivered", "params": {"messageid": part}}
        assert (await post(http, inbound, hook_path(installation), receipt))[0] == 200
    events = await subscriber.wait_for(2)
    assert [e.message_id for e in events] == [reply.message_id] * 2
    assert (await _message(inbound, reply.message_id)).state == M.SENT
    receipt = {"method": "delivered", "params": {"messageid": "p-2"}}
    assert (await post(http, inbound, hook_path(installation), receipt))[0] == 200
    await subscriber.wait_for(3)
    await subscriber.close()
    assert (await _message(inbound, reply.message_id)).state == M.DELIVERED


async def test_a_one_request_send_is_unchanged(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url))
    await inbound.enable("acme-sms")
    provider.state.script("/messages", *_ids("p-only"))
    reply = await inbound.send(text="short")
    (received,) = provider.state.requests
    assert json.loads(received.body) == {"to": "+15557654321", "content": "short", "n": "1/1"}
    assert (reply.provider_message_id, list(reply.provider_message_ids)) == ("p-only", ["p-only"])
    message = await _message(inbound, reply.message_id)
    assert list(message.provider_message_ids) == ["p-only"]


async def test_each_media_item_then_the_caption(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url))
    await inbound.enable("acme-sms")
    provider.state.script("/mms", *_ids("m-1", "m-2"))
    provider.state.script("/sms", *_ids("t-1"))
    request = _file("https://files.example/1.jpg", "https://files.example/2.jpg", text="look")
    reply = await inbound.stub.SendFile(request)
    received = [(r.path, json.loads(r.body)) for r in provider.state.requests]
    assert received == [
        ("/mms", {"to": "+15557654321", "media": "https://files.example/1.jpg"}),
        ("/mms", {"to": "+15557654321", "media": "https://files.example/2.jpg"}),
        ("/sms", {"to": "+15557654321", "text": "look"}),
    ]
    assert list(reply.provider_message_ids) == ["m-1", "m-2", "t-1"]

    # No caption: no text request.
    provider.state.clear_requests()
    reply = await inbound.stub.SendFile(_file("https://files.example/1.jpg"))
    assert [r.path for r in provider.state.requests] == ["/mms"]
    assert list(reply.provider_message_ids) == ["m-2"]


async def test_a_failure_after_a_part_was_sent_keeps_it_and_the_key(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url))
    await inbound.enable("acme-sms")
    provider.state.script(
        "/messages", *_ids("p-1"), Answer(status=400, json={"error": "bad"}), *_ids("p-x")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inbound.send(text="one two three", idempotency_key="k-1")
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # the failing part's code
    info = rpc_details(error)["error_info"]
    assert info.reason == "PARTIALLY_SENT"
    assert (info.metadata["part"], info.metadata["parts"]) == ("2", "2")
    assert info.metadata["part_reason"] == "PROVIDER_REJECTED"
    assert "request 2 of 2 failed after 1 were sent" in error.details()
    assert len(provider.state.requests) == 2

    # The key is not released: a retry gets the same error and sends nothing.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await inbound.send(text="one two three", idempotency_key="k-1")
    assert rpc_details(again.value)["error_info"].reason == "PARTIALLY_SENT"
    assert len(provider.state.requests) == 2
    stored = await inbound.server.store.get_message_by_idempotency_key("org-1", "k-1")
    assert stored is not None
    message = await _message(inbound, stored.id)
    assert message.state == M.FAILED
    assert list(message.provider_message_ids) == ["p-1"]
    assert message.provider_message_id == "p-1"


async def test_a_first_request_failure_is_as_for_one_request(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url))
    await inbound.enable("acme-sms")
    provider.state.script("/messages", Answer(status=400, json={"error": "bad"}))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inbound.send(text="one two three")
    assert rpc_details(caught.value)["error_info"].reason == "PROVIDER_REJECTED"
    assert len(provider.state.requests) == 1


async def test_too_many_requests_fail_before_anything_is_sent(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url, split={"max_length": 1}))
    await inbound.enable("acme-sms")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inbound.send(text="x" * 17)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_details(caught.value)["error_info"].reason == "TOO_MANY_REQUESTS"
    await asyncio.sleep(0)
    assert provider.state.requests == []


async def test_media_urls_must_be_http_urls(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url))
    await inbound.enable("acme-sms")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inbound.stub.SendFile(
            _file("https://files.example/1.jpg", "ftp://files.example/2.jpg")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = rpc_details(caught.value)["bad_request"].field_violations
    assert [v.field for v in violations] == ["media_urls[0]"]


async def test_a_receipt_for_a_later_part_that_overtakes_the_send_is_completed(
    inbound: Gateway, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    await inbound.register(_definition(provider.url))
    installation = await inbound.enable("acme-sms")
    provider.state.script(
        "/messages",
        Answer(json={"data": {"id": "p-1"}}),
        Answer(json={"data": {"id": "p-2"}}, delay_s=1.0),
    )
    subscriber = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    send = asyncio.create_task(inbound.send(text="one two three"))
    async with asyncio.timeout(10):
        await provider.state.wait_for_requests(2)
    receipt = {"method": "delivered", "params": {"messageid": "p-2"}}
    # The second part's id is not recorded yet: the receipt is held, then completed.
    assert (await post(http, inbound, hook_path(installation), receipt))[0] == 200
    reply = await send
    (event,) = await subscriber.wait_for(1)
    await subscriber.close()
    assert event.message_id == reply.message_id
    assert event.provider_message_id == "p-2"
    assert (await _message(inbound, reply.message_id)).state == M.SENT  # p-1 not delivered


async def test_a_repeat_of_the_key_gets_every_id_again_without_sending(
    inbound: Gateway, provider: RunningFakeProvider
) -> None:
    await inbound.register(_definition(provider.url))
    await inbound.enable("acme-sms")
    provider.state.script("/messages", *_ids("p-1", "p-2"))
    first = await inbound.send(text="one two three", idempotency_key="k-2")
    again = await inbound.send(text="one two three", idempotency_key="k-2")
    assert again.replayed and not first.replayed
    assert list(again.provider_message_ids) == list(first.provider_message_ids) == ["p-1", "p-2"]
    assert len(provider.state.requests) == 2
