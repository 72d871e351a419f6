"""(ext) ``token``: a static shared secret the provider sends as it is, in a header or in a body
field, compared in constant time (docs/format.md, "WebhookAuth").

- ``header``: the header that carries it, after an optional ``prefix`` (``Bearer ``, compared
  without regard to case) — Pinnacle's ``PINNACLE-SIGNING-SECRET``, a custom ``X-Api-Key``;
- ``field``: a JSON Pointer to a text value of a JSON object body, or ``/name`` for a field of a
  form body — Telerivet's ``secret`` POST parameter.

Such a token proves only that the sender knows it; nothing is signed, so it cannot tell a
recorded request from a new one. The body is parsed once more for the field, in linear time, and
a body nested deeper than Python's recursion allows is refused, never raised.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from urllib.parse import parse_qs

from server.engine import WebhookAuth

from ._encoding import utf8
from ._failed import WebhookAuthFailed
from ._options import secret, text
from ._request import SignedRequest, media_type, single_header

__all__ = ["verify_token"]

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_MAX_FIELDS = 10_000


def verify_token(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    expected = utf8(secret(auth, "token", properties))
    if "field" in auth.options:
        given = _field(request, text(auth, "field"))
    else:
        given = _header(request, text(auth, "header"), text(auth, "prefix", ""))
    if not hmac.compare_digest(utf8(given), expected):
        raise WebhookAuthFailed("the token does not match")


def _header(request: SignedRequest, name: str, prefix: str) -> str:
    value = single_header(request, name)
    if value[: len(prefix)].lower() != prefix.lower():
        raise WebhookAuthFailed(f"the {name} header does not start with {prefix.strip()}")
    return value[len(prefix) :].strip()


def _field(request: SignedRequest, pointer: str) -> str:
    """The text at ``pointer`` in the body (JSON object or form)."""
    if not pointer.startswith("/"):
        raise WebhookAuthFailed("the WebhookAuth option field is not valid")
    path = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    kind = media_type(request)
    if kind == _FORM or (kind != _JSON and not request.body.lstrip().startswith(b"{")):
        return _form_field(request.body, path)
    try:
        value: object = json.loads(request.body)
    except (ValueError, RecursionError):
        raise WebhookAuthFailed("the body is not valid JSON") from None
    for token in path:
        if isinstance(value, Mapping) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise WebhookAuthFailed("the body has no token field")
    if not isinstance(value, str):
        raise WebhookAuthFailed("the body's token field is not text")
    return value


def _form_field(body: bytes, path: list[str]) -> str:
    if len(path) != 1:
        raise WebhookAuthFailed("the body has no token field")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise WebhookAuthFailed("the body is not a valid form") from None
    values = fields.get(path[0], [])
    if not values:
        raise WebhookAuthFailed("the body has no token field")
    if len(values) > 1:
        raise WebhookAuthFailed("the body's token field appears more than once")
    return values[0]
