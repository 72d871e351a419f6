"""Building Definitions with webhook models directly from the dataclasses, for the matcher's tests.

The loader is not used here on purpose: these tests pin the matcher down on its own.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from server.engine import (
    Definition,
    EventType,
    MatchResult,
    RequestTemplate,
    WebhookModel,
    WebhookRequest,
    freeze,
    match_webhook,
)


def model(
    event_key: str,
    parameters: Any,
    *,
    event_type: str = "message",
    method: str = "POST",
    each: str | None = None,
    absent: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    index: int = 0,
) -> WebhookModel:
    return WebhookModel(
        pointer=f"/Webhook/{index}",
        index=index,
        event_key=event_key,
        event_type=EventType(event_type),
        method=method,  # type: ignore[arg-type]
        parameters=freeze(parameters),
        each=each,
        absent=absent,
        headers=MappingProxyType(dict(headers or {})),
    )


def definition(*models: WebhookModel, properties: tuple[str, ...] = ()) -> Definition:
    """A definition holding ``models`` (re-indexed in the order given)."""
    from server.engine import Property

    webhooks = tuple(
        WebhookModel(
            pointer=f"/Webhook/{i}",
            index=i,
            event_key=m.event_key,
            event_type=m.event_type,
            method=m.method,
            parameters=m.parameters,
            each=m.each,
            absent=m.absent,
            headers=m.headers,
        )
        for i, m in enumerate(models)
    )
    send = RequestTemplate(
        pointer="/API/SendMessage",
        method="POST",
        url="https://api.example.com/messages",
        content_type="application/json",
        parameters=freeze({"from": "$from$", "to": "$to$", "content": "$content$"}),
        response_map=freeze({"data": {"id": "$messageid$"}}),
    )
    return Definition(
        id="Test",
        name="Test",
        logo=None,
        class_="sms",
        properties=tuple(Property(name=p) for p in properties),
        auth=None,
        oauth2=None,
        send_message=send,
        send_file=None,
        webhooks=webhooks,
        subscribe=(),
        unsubscribe=(),
        webhook_auth=None,
        number_format="as_given",
        warnings=(),
        source=None,
    )


def definition_from_json(document: dict[str, Any]) -> Definition:
    """The webhook part of a definition file, built without the loader."""
    models = [
        model(
            m["event_key"],
            m["request_parameters"],
            event_type=m["event_type"],
            method=m["request_method"],
            each=m.get("each"),
        )
        for m in document.get("Webhook", [])
    ]
    return definition(*models, properties=tuple(document.get("properties", ())))


def post_json(
    defn: Definition,
    body: Any,
    *,
    method: str = "POST",
    headers: tuple[tuple[str, str], ...] = (),
) -> MatchResult:
    request = WebhookRequest(
        method=method,
        content_type="application/json",
        body=json.dumps(body).encode(),
        headers=headers,
    )
    return match_webhook(defn, request)
