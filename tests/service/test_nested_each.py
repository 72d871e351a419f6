"""(ext) Several events of different kinds in one webhook, over real sockets (docs/format.md,
"Nested lists"): a WhatsApp-shaped body with a message and a receipt inside
``entry[].changes[].value`` gives both events from one request, the message routed by the
change's metadata and carrying the contact's name, the receipt settling the sent message; the
same body again gives nothing new, each event a duplicate on its own."""

from __future__ import annotations

from typing import Any

import aiohttp

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider
from tests.nested_lists_support import whatsapp_status, whatsapp_text

from .conftest import Gateway
from .test_inbound import (
    hook_path,
    http,  # noqa: F401 (a fixture)
    inbound,  # noqa: F401 (a fixture)
    inbound_definition,
    post,
)

E = gateway_pb2.Event
WEBHOOKS: list[dict[str, Any]] = [
    whatsapp_text(),
    whatsapp_status("delivered", "messageDelivered"),
    whatsapp_status("read", "messageRead"),
]


def _body(statuses: list[dict[str, str]], messages: list[dict[str, Any]]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "15550001111"},
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": "15557654321"}],
        "messages": messages,
        "statuses": statuses,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }


async def test_one_webhook_gives_a_message_and_a_receipt_each_deduplicated_on_its_own(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await inbound.register(inbound_definition(provider.url, WEBHOOKS))
    installation = await inbound.enable("acme-sms", numbers={"+15550001111": ["101"]})
    reply = await inbound.send()
    path = hook_path(installation)
    text = {
        "from": "15557654321",
        "id": "wamid.IN1",
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": "hello"},
    }
    delivered = {"id": reply.provider_message_id, "status": "delivered", "timestamp": "1"}
    body = _body([delivered], [text])
    for _ in range(2):  # the platform retries: nothing new the second time
        assert (await post(http, inbound, path, body)) == (200, "")
    read = {"id": reply.provider_message_id, "status": "read", "timestamp": "2"}
    assert (await post(http, inbound, path, _body([read], []))) == (200, "")

    types = [E.MESSAGE, E.MESSAGE_DELIVERED, E.MESSAGE_READ]
    listed = await inbound.stub.ListEvents(gateway_pb2.ListEventsRequest(types=types))
    events = sorted(listed.events, key=lambda e: e.cursor)
    assert [(e.type, e.provider_message_id) for e in events] == [
        (E.MESSAGE, "wamid.IN1"),
        (E.MESSAGE_DELIVERED, reply.provider_message_id),
        (E.MESSAGE_READ, reply.provider_message_id),
    ]
    message, receipt, _ = events
    assert (getattr(message, "from"), message.to, message.text) == (
        "15557654321",
        "15550001111",
        "hello",
    )
    assert dict(message.fields) == {"contact_name": "Ada"}
    assert message.installation_id == installation.id and list(message.users) == ["101"]
    assert receipt.message_id == reply.message_id
    sent = await inbound.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert sent.state == gateway_pb2.Message.DELIVERED
