"""Definitions and RequestTemplates built from the dataclasses, for the renderer's tests.

The loader is not used on purpose: these tests pin the renderer down on its own. Also the parsers
the tests read bodies back with (real parsers, never the renderer's own code).
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from server.engine import (
    Auth,
    Definition,
    NumberFormat,
    OAuth2Config,
    Property,
    RequestTemplate,
    freeze,
)


def request(
    parameters: Any = None,
    *,
    url: str = "https://api.example.com/messages",
    method: str = "POST",
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    response_map: Any = None,
    pointer: str = "/API/SendMessage",
) -> RequestTemplate:
    return RequestTemplate(
        pointer=pointer,
        method=method,  # type: ignore[arg-type]
        url=url,
        content_type=content_type,
        parameters=freeze(parameters),
        headers=MappingProxyType(dict(headers or {})),
        response_map=freeze(response_map),
    )


def definition(
    send_message: RequestTemplate | None = None,
    *,
    properties: tuple[Property, ...] = (Property(name="API key"),),
    auth: Auth | None = None,
    oauth2: OAuth2Config | None = None,
    number_format: NumberFormat = "as_given",
    send_file: RequestTemplate | None = None,
    subscribe: tuple[RequestTemplate, ...] = (),
) -> Definition:
    return Definition(
        id="Example",
        name="Example",
        logo=None,
        class_="sms",
        properties=properties,
        auth=auth,
        oauth2=oauth2,
        send_message=send_message or request({"to": "$to$"}),
        send_file=send_file,
        webhooks=(),
        subscribe=subscribe,
        unsubscribe=(),
        webhook_auth=None,
        number_format=number_format,
        warnings=(),
        source=None,
    )


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The (name, value) parts of a multipart/form-data body, read by the stdlib email parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + body
    )
    assert message.is_multipart()
    assert not message.defects, message.defects
    fields = []
    for part in message.iter_parts():
        assert part.get_content_disposition() == "form-data"
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes)
        fields.append((name, payload.decode("utf-8")))
    return fields


def header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) <= 1, f"{name} appears {len(values)} times"
    return values[0] if values else None
