"""Parsing an inbound webhook request into its payload (docs/format.md, "Webhook bodies").

- GET, or a request with an empty body: the query parameters.
- JSON when the Content-Type says so (``application/json``, any ``…/json`` or ``…+json`` type, any
  charset), or when the body starts with ``{`` or ``[`` (after whitespace).
- ``application/x-www-form-urlencoded``: the fields, keys kept flat as sent (``price[amount]`` is
  one key); a key repeated in the body becomes a list of its values, in order.
- ``multipart/form-data``: the named parts as fields (:mod:`._multipart` says how each is read).
- XML when the Content-Type says so (``application/xml``, ``text/xml``, any ``…+xml`` type):
  the tree :mod:`._xml` reads, with its hardened parser and its own limits (docs/format.md,
  "XML bodies"); a body that it refuses says why ("the body is not acceptable XML: …").
- No Content-Type at all: JSON if the body looks like JSON; XML if it starts with ``<`` and is
  acceptable XML; else a form.

Form, multipart and query payloads are ``dict[str, str | list[str]]``; a JSON payload is the plain
parsed JSON. Text is decoded leniently where the format has no strict rule (form, multipart:
invalid bytes become U+FFFD); a JSON body must decode in its charset. Anything that cannot be
parsed raises :class:`WebhookParseError` (the core answers 400).

Every body type is read at a cost linear in its size and refused beyond fixed limits
(docs/format.md, "Webhook bodies"), with :class:`WebhookParseError` too — 400, not 413: the
sidecar has already refused bodies over its byte limit, and these refuse a shape, not a size.
A form or query has at most :data:`MAX_FIELDS` fields and a multipart body at most that many
parts. A JSON document is read by the C parser, then walked without recursion, stopping at the
first container nested deeper than :data:`MAX_JSON_DEPTH` or at the value after
:data:`MAX_JSON_VALUES` (every array element and object member counts); a body whose raw bytes
cannot hold that many is not walked at all.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from ._charset import decode_text
from ._errors import WebhookParseError
from ._multipart import MAX_PARTS, parse_multipart
from ._xml import XmlError, is_xml, parse_xml

__all__ = [
    "MAX_FIELDS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_VALUES",
    "FormFields",
    "WebhookRequest",
    "media_type",
    "parse_webhook",
]

FormFields = dict[str, str | list[str]]

FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
_WHITESPACE: Final = b" \t\r\n"
_UTF8_BOM: Final = b"\xef\xbb\xbf"

#: Most fields in a form or a query (and parts in a multipart body).
MAX_FIELDS: Final = MAX_PARTS
#: Deepest nesting of JSON arrays and objects (the top level is depth 1): under the JSON
#: parser's own recursion limit, so that what is refused does not depend on the caller's stack.
MAX_JSON_DEPTH: Final = 800
#: Most values in a JSON document: array elements and object members, at any depth.
MAX_JSON_VALUES: Final = 100_000


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookRequest:
    """An inbound webhook as the sidecar received it; ``query`` is the decoded query string."""

    method: str
    content_type: str | None
    body: bytes
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # as received, in order (models may match them)


def parse_webhook(request: WebhookRequest) -> object:
    """The payload(s) of ``request``: parsed JSON (a top-level list is a batch) or form fields."""
    body = request.body
    if request.method.upper() == "GET" or not body.strip(_WHITESPACE):
        if len(request.query) > MAX_FIELDS:
            raise WebhookParseError(f"the query has more than {MAX_FIELDS} parameters")
        return fields(request.query)
    media, params = media_type(request.content_type)
    charset = params.get("charset")
    if media is not None and is_json(media):
        return _parse_json(body, charset)
    if media != MULTIPART and _looks_like_json(body):
        try:
            return _parse_json(body, charset)
        except WebhookParseError:
            if media != FORM:
                raise
            # declared as a form and merely starting with "{" or "[": read it as the form it says
    if media is None and _looks_like_xml(body):
        try:
            return parse_xml(body)
        except XmlError:
            pass  # only a guess, and a wrong one: read it as a form, as without XML
    if media is None or media == FORM:
        return _parse_form(body, charset)
    if media == MULTIPART:
        return fields(parse_multipart(request.content_type or "", body))
    if is_xml(media):
        try:
            return parse_xml(body, charset)
        except XmlError as exc:
            raise WebhookParseError(f"the body is not acceptable XML: {exc}") from None
    raise WebhookParseError(f"cannot read a webhook body of type {media!r}")


def media_type(content_type: str | None) -> tuple[str | None, dict[str, str]]:
    """``"Application/JSON; charset=UTF-8"`` → ``("application/json", {"charset": "UTF-8"})``."""
    if not content_type:
        return None, {}
    main, *rest = content_type.split(";")
    params: dict[str, str] = {}
    for param in rest:
        name, sep, value = param.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower() or None, params


def is_json(media: str) -> bool:
    return media.endswith(("/json", "+json"))


def fields(pairs: Iterable[tuple[str, str]]) -> FormFields:
    """Name/value pairs as a payload: a name given more than once holds the list of its values."""
    out: FormFields = {}
    for name, value in pairs:
        previous = out.get(name)
        if previous is None:
            out[name] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            out[name] = [previous, value]
    return out


def _looks_like_json(body: bytes) -> bool:
    start = body.lstrip(_WHITESPACE)
    if start.startswith(_UTF8_BOM):
        start = start[len(_UTF8_BOM) :].lstrip(_WHITESPACE)
    return start[:1] in (b"{", b"[")


def _looks_like_xml(body: bytes) -> bool:
    start = body.lstrip(_WHITESPACE)
    if start.startswith(_UTF8_BOM):
        start = start[len(_UTF8_BOM) :].lstrip(_WHITESPACE)
    return start[:1] == b"<"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes, charset: str | None) -> object:
    try:
        if charset:
            text = decode_text(body, charset, "strict").lstrip("\ufeff")
            document = json.loads(text, parse_constant=_reject_constant)
            roomy = _roomy(text.count("{") + text.count("["), text.count(","))
        else:
            # bytes: the json module detects UTF-8 (with or without BOM), UTF-16 and UTF-32
            # itself; in each of them every "{", "[" and "," has its byte.
            document = json.loads(body, parse_constant=_reject_constant)
            roomy = _roomy(body.count(b"{") + body.count(b"["), body.count(b","))
    except RecursionError:
        raise WebhookParseError(_TOO_DEEP) from None
    except json.JSONDecodeError as exc:
        raise WebhookParseError(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except UnicodeError:
        raise WebhookParseError(f"the JSON body is not valid {charset or 'UTF-8'}") from None
    except (ValueError, TypeError) as exc:  # NaN/Infinity, an integer too long to convert
        raise WebhookParseError(f"the body is not valid JSON: {exc}") from None
    if roomy:
        _check_json_limits(document)
    return document


_TOO_DEEP: Final = f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"


def _roomy(opens: int, commas: int) -> bool:
    """Whether raw text with these counts could hold a document beyond the limits.

    Every array and object opens with "{" or "[", and every value but a container's first
    follows a ",": text with few of them is within the limits whatever it holds, and is not
    walked (the common case, and the cheap one).
    """
    return opens > MAX_JSON_DEPTH or opens + commas > MAX_JSON_VALUES


def _check_json_limits(document: object) -> None:
    """Walk ``document`` without recursion, stopping at the first limit it goes beyond."""
    pending: list[tuple[Collection[object], int]] = []
    if isinstance(document, dict | list):
        pending.append((document.values() if isinstance(document, dict) else document, 1))
    values = 0
    while pending:
        children, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise WebhookParseError(_TOO_DEEP)
        values += len(children)
        if values > MAX_JSON_VALUES:
            raise WebhookParseError(f"the JSON body has more than {MAX_JSON_VALUES} values")
        for child in children:
            if isinstance(child, dict):
                pending.append((child.values(), depth + 1))
            elif isinstance(child, list):
                pending.append((child, depth + 1))


def _parse_form(body: bytes, charset: str | None) -> FormFields:
    if charset:
        try:
            text = decode_text(body, charset, "replace")
            return fields(_form_pairs(text, charset))
        except (LookupError, ValueError, TypeError):
            pass  # percent-escapes that this codec cannot decode leniently: read it as UTF-8
    return fields(_form_pairs(body.decode("utf-8", "replace"), "utf-8"))


def _form_pairs(text: str, charset: str) -> list[tuple[str, str]]:
    if text.count("&") >= MAX_FIELDS:
        # parse_qsl's own max_num_fields raises a bare ValueError, which here means a charset
        # that cannot decode the escapes: the limit is checked first, at the same cost.
        raise WebhookParseError(f"the form has more than {MAX_FIELDS} fields")
    return parse_qsl(text, keep_blank_values=True, encoding=charset, errors="replace")
