"""(ext) Rich outbound end to end, over real sockets with the fake provider (docs/format.md,
"Replies, templates and reply-to", "Lists of items: $each", "Media kinds"): the bodies a
definition renders from a SendMessage's quick replies, template and reply-to, and a SendFile's
files by kind — sent at once and from the delivery queue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory, rpc_details

_HEAD = {"messaging_product": "whatsapp", "to": "$to$", "context": {"message_id": "$reply_to$"}}
_TEXT = {**_HEAD, "type": "text", "text": {"body": "$content$"}}
_BUTTONS = {
    **_HEAD,
    "type": "interactive",
    "interactive": {
        "type": "button",
        "body": {"text": "$content$"},
        "action": {
            "buttons": {
                "$each": "replies",
                "item": {"type": "reply", "reply": {"id": "$reply_id$", "title": "$reply_title$"}},
            }
        },
    },
}
_TEMPLATE = {
    **_HEAD,
    "type": "template",
    "template": {
        "name": "$template_name$",
        "language": {"code": "$template_language$"},
        "components": [
            {
                "type": "body",
                "parameters": {
                    "$each": "template_parameters",
                    "item": {"type": "text", "text": "$template_parameter$"},
                },
            }
        ],
    },
}


def _definition(provider_url: str) -> str:
    send = {
        "request_method": "POST",
        "request_url": provider_url + "/messages",
        "request_omit_empty": True,
        "request_parameters": {
            "$switch": "$template_name|default:$",
            "cases": {"": {"$switch": "$reply_count$", "cases": {"0": _TEXT}, "default": _BUTTONS}},
            "default": _TEMPLATE,
        },
        "response_map": {"data": {"id": "$messageid$"}},
    }
    files = {
        "request_method": "POST",
        "request_url": provider_url
        + "/media/$media_kind|map:image=sendPhoto,video=sendVideo,audio=sendAudio,"
        "document=sendDocument$",
        "for_each": "media",
        "request_omit_empty": True,
        "request_parameters": {
            "to": "$to$",
            "type": "$media_kind$",
            "reply": {"to": "$reply_to$"},
            "file": {
                "$switch": "$media_kind$",
                "cases": {"image": {"photo": "$content$"}, "document": {"document": "$content$"}},
                "default": {"media": "$content$"},
            },
        },
        "response_map": {"data": {"id": "$messageid$"}},
    }
    return json.dumps(
        {
            "id": "chat",
            "name": "chat",
            "class": "sms",
            "properties": ["API key"],
            "auth": {"type": "Bearer", "token": "$API key$"},
            "addresses": "id",
            "API": {"SendMessage": send, "SendFile": files},
            "Webhook": [
                {
                    "event_key": "mo",
                    "event_type": "message",
                    "request_method": "POST",
                    "request_parameters": {"from": "$from$", "to": "$to$", "text": "$content$"},
                }
            ],
        }
    )


async def _ready(gateway: Gateway, provider: RunningFakeProvider) -> None:
    await gateway.register(_definition(provider.url))
    await gateway.enable("chat", numbers={"1055": []})


def _message(**fields: Any) -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(org_id="org-1", to="4471", **fields)
    setattr(request, "from", "1055")
    return request


async def test_quick_replies_render_one_item_each_and_reply_to_is_the_context(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await _ready(gateway, provider)
    replies = [
        gateway_pb2.QuickReply(id="yes-1", title="Yes"),
        gateway_pb2.QuickReply(id="no-1", title="No", description="not now"),
    ]
    reply = await gateway.stub.SendMessage(
        _message(text="Confirm?", replies=replies, reply_to="wamid.IN1")
    )
    assert reply.provider_message_id
    (received,) = provider.state.requests
    assert received.path == "/messages"
    assert received.json == {
        "messaging_product": "whatsapp",
        "to": "4471",
        "context": {"message_id": "wamid.IN1"},
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Confirm?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes-1", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no-1", "title": "No"}},
                ]
            },
        },
    }


async def test_a_template_without_text_renders_its_parameters_and_no_context(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await _ready(gateway, provider)
    template = gateway_pb2.MessageTemplate(
        name="order_update", language="en_US", parameters=["Ann", "#42"]
    )
    await gateway.stub.SendMessage(_message(template=template))
    (received,) = provider.state.requests
    assert received.json == {
        "messaging_product": "whatsapp",
        "to": "4471",
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ann"},
                        {"type": "text", "text": "#42"},
                    ],
                }
            ],
        },
    }


async def test_a_plain_text_is_unchanged_and_a_queued_message_keeps_its_rich_parts(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await _ready(gateway, provider)
    await gateway.stub.SendMessage(_message(text="hi"))
    queued = _message(
        text="Pick one",
        replies=[gateway_pb2.QuickReply(id="a", title="A")],
        reply_to="wamid.IN2",
        options=gateway_pb2.SendOptions(mode=gateway_pb2.SendOptions.QUEUE),
    )
    reply = await gateway.stub.SendMessage(queued)
    assert reply.state == gateway_pb2.Message.QUEUED
    await provider.state.wait_for_requests(2)
    first, second = (r.json for r in provider.state.requests)
    assert first == {
        "messaging_product": "whatsapp",
        "to": "4471",
        "type": "text",
        "text": {"body": "hi"},
    }
    assert second["context"] == {"message_id": "wamid.IN2"}
    assert second["interactive"]["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "a", "title": "A"}}
    ]


async def test_files_go_to_the_endpoint_of_their_kind(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await _ready(gateway, provider)
    request = gateway_pb2.SendFileRequest(
        org_id="org-1",
        to="4471",
        media_url="https://cdn.example.com/a",
        media_type="image/jpeg",
        media_urls=["https://cdn.example.com/clip.MP4", "https://cdn.example.com/terms.pdf"],
        reply_to="wamid.IN3",
    )
    setattr(request, "from", "1055")
    reply = await gateway.stub.SendFile(request)
    assert len(reply.provider_message_ids) == 3
    assert [(r.path, r.json) for r in provider.state.requests] == [
        (
            "/media/sendPhoto",
            {
                "to": "4471",
                "type": "image",
                "reply": {"to": "wamid.IN3"},
                "file": {"photo": "https://cdn.example.com/a"},
            },
        ),
        (
            "/media/sendVideo",
            {
                "to": "4471",
                "type": "video",
                "reply": {"to": "wamid.IN3"},
                "file": {"media": "https://cdn.example.com/clip.MP4"},
            },
        ),
        (
            "/media/sendDocument",
            {
                "to": "4471",
                "type": "document",
                "reply": {"to": "wamid.IN3"},
                "file": {"document": "https://cdn.example.com/terms.pdf"},
            },
        ),
    ]


async def test_the_caller_names_the_kind_and_bad_rich_parts_are_refused(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await _ready(gateway, provider)
    request = gateway_pb2.SendFileRequest(
        org_id="org-1", to="4471", media_url="https://cdn.example.com/a.jpg", media_kind="document"
    )
    setattr(request, "from", "1055")
    await gateway.stub.SendFile(request)
    assert provider.state.requests[-1].path == "/media/sendDocument"

    too_many = [gateway_pb2.QuickReply(id=str(i), title="t") for i in range(14)]
    for bad, field in (
        (_message(text="x", replies=too_many), "replies"),
        (_message(text="x", replies=[gateway_pb2.QuickReply(id="a")]), "replies[0].title"),
        (_message(template=gateway_pb2.MessageTemplate(language="en")), "template.name"),
        (_message(), "text"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.stub.SendMessage(bad)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        violations = rpc_details(caught.value)["bad_request"].field_violations
        assert field in [v.field for v in violations]
    request.media_kind = "sticker"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.SendFile(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_an_uploaded_files_kind_is_read_from_its_bytes(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await _ready(gateway, provider)

    async def parts() -> AsyncIterator[gateway_pb2.UploadMediaRequest]:
        start = gateway_pb2.UploadMediaRequest.Start(org_id="org-1", filename="scan.pdf")
        yield gateway_pb2.UploadMediaRequest(start=start)
        yield gateway_pb2.UploadMediaRequest(chunk=_PNG)

    info = await gateway.stub.UploadMedia(parts())
    assert info.content_type == "image/png"
    request = gateway_pb2.SendFileRequest(org_id="org-1", to="4471", media_id=info.media_id)
    setattr(request, "from", "1055")
    await gateway.stub.SendFile(request)
    (received,) = provider.state.requests
    assert (received.path, received.json["type"]) == ("/media/sendPhoto", "image")


# A PNG's first bytes: the sniffer reads the type from them, whatever the file is called.
_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
