"""(ext) Receipts correlated by our id: their ``msgbridge check`` rules (docs/format.md,
"Receipts").

A definition *correlates by our id* when a ``SendMessage`` or ``SendFile`` request carries
``$gateway_id$`` (in its URL, parameters or headers) and a receipt model captures
``$gateway_id$``: its receipts then find their message without the provider's id, so a send whose
answer has no id is complete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import placeholders_in
from ._variables import SEND_FILE, SEND_MESSAGE, model_captures, template_strings, webhook_models

__all__ = [
    "CORRELATION_CHECKS",
    "RECEIPT_EVENT_TYPES",
    "correlates_by_our_id",
    "receipts_capture_our_id",
    "sends_carry_our_id",
]

#: The event types that are receipts (docs/format.md, "Receipts").
RECEIPT_EVENT_TYPES = frozenset({"messageDelivered", "messageFailed", "messageSent"})
_INBOUND_EVENT_TYPES = frozenset({"message", "mms"})
_OUR_ID = "gateway_id"
# By name: a send request's scope gains variables with "Several requests per send".
_SEND_SCOPES = frozenset({SEND_MESSAGE.name, SEND_FILE.name})


def sends_carry_our_id(document: Mapping[str, Any]) -> bool:
    """Whether a SendMessage or SendFile request puts ``$gateway_id$`` in what it sends."""
    for t in template_strings(document):
        if t.scope.name in _SEND_SCOPES and any(p.name == _OUR_ID for p in placeholders_in(t.text)):
            return True
    return False


def receipts_capture_our_id(document: Mapping[str, Any]) -> bool:
    """Whether a receipt model captures ``$gateway_id$``."""
    return any(
        model.get("event_type") in RECEIPT_EVENT_TYPES and _OUR_ID in model_captures(i, model)
        for i, model in webhook_models(document)
    )


def correlates_by_our_id(document: Mapping[str, Any]) -> bool:
    """Receipts find their message by our id: a send carries it and a receipt captures it."""
    return sends_carry_our_id(document) and receipts_capture_our_id(document)


def check_our_id_captures(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A ``$gateway_id$`` capture names a message only in a receipt model of a definition whose
    sends carry our id."""
    carried: bool | None = None
    for i, model in webhook_models(document):
        if _OUR_ID not in model_captures(i, model):
            continue
        at = f"/Webhook/{i}/request_parameters"
        event_type = model.get("event_type")
        if event_type in _INBOUND_EVENT_TYPES:
            yield Problem(
                pointer=at,
                message=f'a model of event_type "{event_type}" captures $gateway_id$, which only '
                "receipts use (to find the message we sent); it is ignored here",
                severity="warning",
            )
            continue
        if carried is None:
            carried = sends_carry_our_id(document)
        if not carried:
            yield Problem(
                pointer=at,
                message="this model captures $gateway_id$, but no SendMessage or SendFile "
                "request carries $gateway_id$ (in a callback URL or a field), so the provider "
                "cannot send it back and these receipts find no message by it",
                severity="warning",
            )


CORRELATION_CHECKS = (check_our_id_captures,)
