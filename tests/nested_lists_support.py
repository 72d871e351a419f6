"""WhatsApp-shaped webhook models for the tests of ``each`` over nested lists and ``enclosing``
(docs/format.md, "Nested lists"): a text message inside ``entry[].changes[].value.messages``,
its number and contact name read from the change around it, and the statuses beside it."""

from __future__ import annotations

import copy
from typing import Any

MESSAGES = "/entry/*/changes/*/value/messages"
STATUSES = "/entry/*/changes/*/value/statuses"
# Around every WhatsApp payload: the body's object, and the change whose value holds it.
AROUND = {
    "": {"object": "whatsapp_business_account"},
    "/entry/*/changes/*": {
        "field": "messages",
        "value": {
            "metadata": {"phone_number_id": "$to$"},
            "contacts": [{"profile": {"name": "$contact_name?$"}}],
        },
    },
}


def whatsapp_text() -> dict[str, Any]:
    """The model of an inbound text message: ``to`` and ``contact_name`` from its change."""
    return {
        "event_key": "text",
        "event_type": "message",
        "request_method": "POST",
        "each": MESSAGES,
        "enclosing": copy.deepcopy(AROUND),
        "request_parameters": {
            "from": "$from$",
            "id": "$messageid$",
            "type": "text",
            "text": {"body": "$content$"},
        },
        "keep": ["contact_name"],
    }


def whatsapp_status(status: str, event_type: str) -> dict[str, Any]:
    """The model of one status of a sent message."""
    return {
        "event_key": status,
        "event_type": event_type,
        "request_method": "POST",
        "each": STATUSES,
        "enclosing": {"": {"object": "whatsapp_business_account"}},
        "request_parameters": {"id": "$messageid$", "status": status},
    }
