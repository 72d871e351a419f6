"""Parsing an inbound webhook request into its payload (spec §6).

- GET, or a request with an empty body: the query parameters.
- JSON when the Content-Type says so (``application/json``, any ``…/json`` or ``…+json`` type, any
  charset), or when the body starts with ``{`` or ``[`` (after whitespace).
- ``application/x-www-form-urlencoded``: the fields, keys kept flat as sent (``price[amount]`` is
  one key); a key repeated in the body becomes a list of its values, in order.
- ``multipart/form-data``: the named parts as fields, read with the standard library's MIME parser.
- No Content-Type at all: JSON if the body looks like JSON, else a form.

Form, multipart and query payloads are ``dict[str, str | list[str]]``; a JSON payload is the plain
parsed JSON. Text is decoded leniently where the format has no strict rule (form, multipart:
invalid bytes become U+FFFD); a JSON body must decode in its charset. Anything that cannot be
parsed raises :class:`WebhookParseError` (the sidecar answers 400).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.errors import MessageDefect
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from typing import Final
from urllib.parse import parse_qsl

from ._errors import WebhookParseError

__all__ = ["FormFields", "WebhookRequest", "media_type", "parse_webhook"]

FormFields = dict[str, str | list[str]]

FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
_WHITESPACE: Final = b" \t\r\n"
_UTF8_BOM: Final = b"\xef\xbb\xbf"


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
    if media is None or media == FORM:
        return _parse_form(body, charset)
    if media == MULTIPART:
        return _parse_multipart(request.content_type or "", body)
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


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _decode(data: bytes, charset: str | None, errors: str) -> str:
    """``data`` in ``charset`` when that names a usable text encoding, else in UTF-8.

    With ``errors="strict"``, bytes that are invalid in a real charset raise UnicodeDecodeError.
    A charset that is unknown, not a text encoding, or a codec that refuses the error handler
    (``idna``, ``undefined``, a name with a NUL…) is ignored.
    """
    if charset:
        try:
            return data.decode(charset, errors)
        except UnicodeDecodeError:
            if errors == "strict":
                raise
        except (LookupError, ValueError, TypeError):
            pass
    return data.decode("utf-8", errors)


def _parse_json(body: bytes, charset: str | None) -> object:
    try:
        if charset:
            return json.loads(
                _decode(body, charset, "strict").lstrip("\ufeff"),
                parse_constant=_reject_constant,
            )
        # bytes: the json module detects UTF-8 (with or without BOM), UTF-16 and UTF-32 itself
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise WebhookParseError("the JSON body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise WebhookParseError(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except UnicodeError:
        raise WebhookParseError(f"the JSON body is not valid {charset or 'UTF-8'}") from None
    except (ValueError, TypeError) as exc:  # NaN/Infinity, an integer too long to convert
        raise WebhookParseError(f"the body is not valid JSON: {exc}") from None


def _parse_form(body: bytes, charset: str | None) -> FormFields:
    if charset:
        try:
            text = _decode(body, charset, "replace")
            return fields(
                parse_qsl(text, keep_blank_values=True, encoding=charset, errors="replace")
            )
        except (LookupError, ValueError, TypeError):
            pass  # percent-escapes that this codec cannot decode leniently: read it as UTF-8
    text = body.decode("utf-8", "replace")
    return fields(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"))


# Defects that mean the multipart structure itself is broken (no boundary, or a truncated body).
_BROKEN_MULTIPART: Final[tuple[str, ...]] = (
    "NoBoundaryInMultipartDefect",
    "StartBoundaryNotFoundDefect",
    "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect",
)


def _broken(defects: list[MessageDefect]) -> bool:
    return any(type(d).__name__ in _BROKEN_MULTIPART for d in defects)


def _parse_multipart(content_type: str, body: bytes) -> FormFields:
    """Named parts as fields. A part's value is its text, a file part's value its filename."""
    header = content_type.replace("\r", " ").replace("\n", " ")
    document = b"Content-Type: " + header.encode("utf-8", "replace") + b"\r\n\r\n" + body
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(document)
        boundary = message.get_boundary()
        if boundary and body.strip(_WHITESPACE) == f"--{boundary}--".encode("utf-8", "replace"):
            return {}  # a form with no fields: only the closing delimiter
        if not message.is_multipart() or _broken(message.defects):
            raise WebhookParseError("the body is not valid multipart/form-data")
        pairs = [field for part in message.iter_parts() if (field := _field(part)) is not None]
    except WebhookParseError:
        raise
    except Exception as exc:
        # The email package records defects rather than raising, but its header-value parser
        # has raised IndexError, ValueError and others on crafted headers. Whatever it raises
        # here, the body is not multipart we can read.
        raise WebhookParseError("the body is not valid multipart/form-data") from exc
    return fields(pairs)


def _field(part: Message) -> tuple[str, str] | None:
    raw_name = part.get_param("name", header="content-disposition")
    if raw_name is None:
        return None  # a part without a field name carries no field
    name = collapse_rfc2231_value(raw_name)
    filename = part.get_filename()
    if filename is not None:
        return name, filename
    content = part.get_payload(decode=True)
    if not isinstance(content, bytes):
        return None  # a nested multipart: not a field
    return name, _decode(content, part.get_content_charset(), "replace")
