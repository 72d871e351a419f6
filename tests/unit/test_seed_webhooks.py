"""Each webhook body shown in the seed, against the seed's complete example, gives its event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _webhook_models import definition_from_json

from server.engine import EventType, InboundEvent, WebhookRequest, match_webhook

# The seed's "Complete JSON file example", unchanged.
SEED_EXAMPLE = """
{
"id": "YourService",
"name": "YourService",
"logo": "https://example.com/assets/logo.png",
"class": "sms",
"properties": [
"API key"
],
"auth": {
"type": "Bearer",
"token": "$API key$"
},
"API": {
"SendMessage": {
"request_method": "POST",
"request_url": "https://api.example.com/messages",
"request_content_type": "application/json",
"request_parameters": {
"from": "$from$",
"to": "$to$",
"content": "$content$"
},
"response_map": {
"data": {
"id": "$messageid$"
}
}
},
"SendFile": {
"request_method": "POST",
"request_url": "https://api.example.com/messages",
"request_content_type": "application/json",
"request_parameters": {
"from": "$from$",
"to": "$to$",
"content": "$content$"
},
"response_map": {
"data": {
"id": "$messageid$"
}
}
}
},
"Webhook": [
{
"event_key": "delivered",
"event_type": "messageDelivered",
"request_method": "POST",
"request_parameters": {
"method": "$event_key$",
"params": {
"messageid": "$messageid$"
}
}
},
{
"event_key": "file",
"event_type": "mms",
"request_method": "POST",
"request_parameters": {
"method": "$event_key$",
"params": {
"from": "$from$",
"to": "$to$",
"text": "$text$",
"url": "$url$"
}
}
},
{
"event_key": "message",
"event_type": "message",
"request_method": "POST",
"request_parameters": {
"method": "$event_key$",
"params": {
"from": "$from$",
"to": "$to$",
"content": "$content$"
}
}
}
]
}
"""

# The three "POST request JSON body" examples of the seed, as printed there.
SEND_MESSAGE_BODY = """
{
"method": "message",
"params":{
"from": "+61855555555",
"to": "+61123456789",
"content": "Hello there!"
}
}
"""

SEND_FILE_BODY = """
{
"method": "file",
"params":{
"from": "+61855555555",
"to": "+61123456789",
"text": "Sending a file",
"url":"https://your.server.com/files/8a8d89798as9ud.jpeg"
}
}
"""

DELIVERED_BODY = """
{
"method": "delivered",
"params": {
"messageid": "9612c4e2-27f8-4463-a517-c6306ffdabff"
}
}
"""

MESSAGE_EVENT = InboundEvent(
    type=EventType.MESSAGE,
    model=2,
    event_key="message",
    payload_pointer="",
    from_number="+61855555555",
    to_number="+61123456789",
    text="Hello there!",
    media_urls=(),
    provider_message_id=None,
    status=None,
    error=None,
    captures={"from": "+61855555555", "to": "+61123456789", "content": "Hello there!"},
)

FILE_EVENT = InboundEvent(
    type=EventType.MMS,
    model=1,
    event_key="file",
    payload_pointer="",
    from_number="+61855555555",
    to_number="+61123456789",
    text="Sending a file",
    media_urls=("https://your.server.com/files/8a8d89798as9ud.jpeg",),
    provider_message_id=None,
    status=None,
    error=None,
    captures={
        "from": "+61855555555",
        "to": "+61123456789",
        "text": "Sending a file",
        "url": "https://your.server.com/files/8a8d89798as9ud.jpeg",
    },
)

DELIVERED_EVENT = InboundEvent(
    type=EventType.MESSAGE_DELIVERED,
    model=0,
    event_key="delivered",
    payload_pointer="",
    from_number=None,
    to_number=None,
    text=None,
    media_urls=(),
    provider_message_id="9612c4e2-27f8-4463-a517-c6306ffdabff",
    status=None,
    error=None,
    captures={"messageid": "9612c4e2-27f8-4463-a517-c6306ffdabff"},
)

SEED = definition_from_json(json.loads(SEED_EXAMPLE))
CASES = [
    (SEND_MESSAGE_BODY, MESSAGE_EVENT),
    (SEND_FILE_BODY, FILE_EVENT),
    (DELIVERED_BODY, DELIVERED_EVENT),
]


@pytest.mark.parametrize(("body", "expected"), CASES, ids=["message", "file", "delivered"])
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_each_seed_body_produces_exactly_the_seed_event(
    body: str, expected: InboundEvent, content_type: str | None
) -> None:
    request = WebhookRequest(method="POST", content_type=content_type, body=body.encode())
    result = match_webhook(SEED, request)
    assert result.events == (expected,)
    assert result.unmatched == ()


def test_the_seed_bodies_in_one_batch_give_their_events_in_order() -> None:
    batch = [json.loads(body) for body, _ in CASES]
    request = WebhookRequest(
        method="POST", content_type="application/json", body=json.dumps(batch).encode()
    )
    result = match_webhook(SEED, request)
    expected = [(f"/{i}", event.type, event.model) for i, (_, event) in enumerate(CASES)]
    assert [(e.payload_pointer, e.type, e.model) for e in result.events] == expected


@pytest.mark.parametrize(
    ("payload", "closest"),
    [
        # a file without its url is not an mms; the closest model says what is missing
        (
            {"method": "file", "params": {"from": "1", "to": "2", "text": "t"}},
            "/params/url: key missing",
        ),
        # a key the seed's models do not know
        ({"method": "typing", "params": {}}, "/method: expected 'delivered', got 'typing'"),
    ],
)
def test_a_seed_shaped_body_that_fits_no_model_is_unmatched_with_a_reason(
    payload: dict[str, Any], closest: str
) -> None:
    request = WebhookRequest(method="POST", content_type=None, body=json.dumps(payload).encode())
    result = match_webhook(SEED, request)
    assert result.events == ()
    (unmatched,) = result.unmatched
    assert unmatched.near_misses[0].reason.startswith(closest)


def test_the_seed_webhooks_must_be_posted() -> None:
    request = WebhookRequest(
        method="PUT", content_type="application/json", body=DELIVERED_BODY.encode()
    )
    result = match_webhook(SEED, request)
    assert result.events == ()
    assert result.unmatched[0].near_misses[0].reason == "method PUT, model wants POST"
