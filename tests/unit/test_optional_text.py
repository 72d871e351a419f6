"""(ext) A message's text may be an optional capture with a default (docs/format.md, "Webhook
models": a media message without a caption is one model): checked and matched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_more_event_types import with_model

from server.engine import WebhookRequest, check_definition, load_definition, match_webhook


def document(parameters: dict[str, Any], event_type: str = "message") -> dict[str, Any]:
    return with_model(event_type, parameters)


def errors(doc: dict[str, Any]) -> list[str]:
    return [p.message for p in check_definition(doc) if p.severity == "error"]


MEDIA = {"from": "$from$", "to": "$to$", "id": "$messageid$", "caption": "$text|default:?$"}


def test_an_optional_text_with_a_default_is_what_a_message_captures() -> None:
    assert errors(document(MEDIA)) == []
    assert errors(document({**MEDIA, "caption": "$content|default:none?$"})) == []


def test_an_optional_text_without_a_default_still_does_not_count() -> None:
    (message,) = errors(document({**MEDIA, "caption": "$text?$"}))
    assert "does not capture $content$ (or $text$)" in message


@pytest.mark.parametrize(
    ("parameters", "event_type", "lacks"),
    [
        ({**MEDIA, "from": "$from|default:x?$"}, "message", "$from$"),
        ({"id": "$messageid|default:x?$"}, "messageDelivered", "$messageid$"),
    ],
)
def test_a_default_never_stands_for_an_address_or_an_id(
    parameters: dict[str, Any], event_type: str, lacks: str
) -> None:
    (message,) = errors(document(parameters, event_type))
    assert f"does not capture {lacks}" in message


def test_a_message_without_its_text_has_the_default_text() -> None:
    definition = load_definition(document(MEDIA))
    for body, text in (({"caption": "hi"}, "hi"), ({}, "")):
        payload = {"from": "1", "to": "2", "id": "m1", **body}
        request = WebhookRequest(
            method="POST",
            content_type="application/json",
            body=json.dumps(payload).encode(),
            query="",
            headers=(),
        )
        (event,) = match_webhook(definition, request).events
        assert event.text == text
