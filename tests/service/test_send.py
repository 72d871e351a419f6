"""SendMessage/SendFile end to end: the exact request the provider receives, and the reply."""

from __future__ import annotations

import base64
import json
import urllib.parse

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, definition


async def test_json_bearer_send_reaches_the_provider_exactly(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    text = 'Héllo "world" \\ $5 $to$ 👋\nsecond line'
    reply = await gateway.send(text=text)

    (received,) = provider.state.requests
    assert received.method == "POST"
    assert received.path == "/messages"
    headers = dict(received.headers)
    assert headers["Authorization"] == "Bearer key-123"
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(received.body) == {
        "from": "+15550001111",
        "to": "+15557654321",
        "content": text,
    }
    assert reply.provider_message_id == received.answer_id
    assert reply.HasField("provider_message_id")
    assert reply.provider_status == 200
    assert reply.attempts == 1
    assert reply.message_id and reply.message_id != reply.provider_message_id
    stored = await gateway.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=reply.message_id)
    )
    assert stored.state == gateway_pb2.Message.SENT
    assert stored.provider_message_id == received.answer_id
    assert stored.text == text


async def test_form_basic_auth_send(gateway: Gateway, provider: RunningFakeProvider) -> None:
    await gateway.register(
        definition(
            provider.url,
            content_type="application/x-www-form-urlencoded",
            parameters={
                "From": "$from$",
                "To": "$to$",
                "Body": "$content$",
                "StatusCallback": "$webhook_url$",
            },
            auth={"type": "Basic", "username": "$Account SID$", "password": "$Auth Token$"},
            properties=["Account SID", "Auth Token"],
            response_map={"sid": "$messageid$"},
            path="/2010-04-01/Accounts/$Account SID$/Messages.json",
        )
    )
    installation = await gateway.enable(
        "acme-sms", properties={"Account SID": "AC123", "Auth Token": "tok/en"}
    )
    reply = await gateway.send(text="Grüße 🎉 & more=1")

    (received,) = provider.state.requests
    assert received.path == "/2010-04-01/Accounts/AC123/Messages.json"
    headers = dict(received.headers)
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"AC123:tok/en").decode()
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    form = dict(urllib.parse.parse_qsl(received.body.decode(), strict_parsing=True))
    assert form == {
        "From": "+15550001111",
        "To": "+15557654321",
        "Body": "Grüße 🎉 & more=1",
        "StatusCallback": installation.webhook_url,
    }
    # The default answer has no "sid": the message was accepted, its provider id is unknown.
    assert not reply.HasField("provider_message_id")
    assert reply.provider_status == 200


async def test_multipart_send_file(gateway: Gateway, provider: RunningFakeProvider) -> None:
    await gateway.register(definition(provider.url, content_type="multipart/form-data"))
    await gateway.enable("acme-sms")
    request = gateway_pb2.SendFileRequest(
        org_id="org-1",
        to="+15557654321",
        media_url="https://files.example.com/a b.jpg",
        text="a caption ✨",
    )
    setattr(request, "from", "+15550001111")
    reply = await gateway.stub.SendFile(request)

    (received,) = provider.state.requests
    parts = {p.name: p.text for p in received.parts or ()}
    assert parts == {
        "from": "+15550001111",
        "to": "+15557654321",
        "media_url": "https://files.example.com/a b.jpg",
        "caption": "a caption ✨",
    }
    assert dict(received.headers)["Content-Type"].startswith("multipart/form-data; boundary=")
    assert reply.provider_message_id == received.answer_id


async def test_get_query_send_and_optional_keys_left_out(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(
        definition(
            provider.url,
            method="GET",
            parameters={
                "from": "$from$",
                "to": "$to$",
                "text": "$content$",
                "ext": "$extension$",
                "key": "$API key$",
            },
            auth={"type": "Header", "headers": {"X-Client": "msgbridge"}},
            response_map="$messageid$",
            path="/send?format=plain",
        )
    )
    await gateway.enable("acme-sms")
    provider.state.script("/send", Answer(text="ID-42\n"))
    reply = await gateway.send(text="a&b=c #1 ü")

    (received,) = provider.state.requests
    assert received.method == "GET"
    assert received.body == b""
    assert dict(received.query) == {
        "format": "plain",
        "from": "+15550001111",
        "to": "+15557654321",
        "text": "a&b=c #1 ü",
        "key": "key-123",
    }
    assert dict(received.headers)["X-Client"] == "msgbridge"
    assert reply.provider_message_id == "ID-42"


async def test_extension_domain_and_national_from(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(
        definition(
            provider.url,
            parameters={
                "from": "$from$",
                "to": "$to$",
                "extension": "$extension$",
                "domain": "$domain$",
                "content": "$content$",
            },
        )
    )
    await gateway.enable("acme-sms", numbers={"(555) 000-1111": ["101"]}, region="US")
    request = gateway_pb2.SendMessageRequest(
        org_id="org-1", to="12345", text="hi", extension="101", domain="acme.example"
    )
    setattr(request, "from", "555-000-1111")
    await gateway.stub.SendMessage(request)
    (received,) = provider.state.requests
    assert json.loads(received.body) == {
        "from": "555-000-1111",
        "to": "12345",
        "extension": "101",
        "domain": "acme.example",
        "content": "hi",
    }
