"""(ext) ``string_to_sign``: the signed string of an ``hmac`` or an ``rsa`` built from parts of
the request (docs/format.md, "WebhookAuth").

The option is a template in the engine's placeholder grammar (``$$`` is a literal dollar sign);
each placeholder names a part of the request, from a table of small functions, one per part:

- ``$body$``: the raw body, as received;
- ``$url$``: the full URL the provider called; ``$base_url$``: the same without query or fragment;
- ``$method$``: the request method, upper case;
- ``$path$``: the path and query of the URL as sent, ``/`` when empty (the request target of
  the request line);
- ``$timestamp$``: the value of ``timestamp_header``, which must be within the replay window;
- ``$nonce$``: the value of ``nonce_header``;
- ``$header:Name$``: the value of any other header;
- ``$url_sorted_params$``: the URL without its query, then — when the request has any query or
  form parameters — ``?``, the query parameters sorted by name as ``name=value`` joined by ``&``,
  ``.`` when there are both, and the form body's parameters sorted by name as ``namevalue`` with
  no separator (values percent-decoded; a repeated name's values sorted too). This is what
  Plivo's X-Plivo-Signature-V3 signs before ``.<nonce>`` (docs/format.md, "WebhookAuth"). A body
  that is not form-encoded would not be covered, so it is refused.

A header a placeholder names must appear exactly once. Literal text is UTF-8. ``msgbridge check``
refuses any other placeholder (server/engine/_webhook_auth_checks.py names the same parts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from server.engine import Placeholder, WebhookAuth, parse_template

from ._encoding import utf8
from ._failed import WebhookAuthFailed
from ._options import text
from ._request import (
    FORM,
    SignedRequest,
    base_url,
    form_fields,
    media_type,
    query_fields,
    single_header,
)

__all__ = ["HEADER_PART", "PARTS", "string_to_sign"]

HEADER_PART = "header:"
MAX_TEMPLATE = 1_000  # the schema's bound too: a template is parsed once per request

Signed = tuple[bytes, str | None]  # the signed bytes, and the signed timestamp if any
Part = Callable[[WebhookAuth, SignedRequest], bytes]


def _body(auth: WebhookAuth, request: SignedRequest) -> bytes:
    return request.body


def _url(auth: WebhookAuth, request: SignedRequest) -> bytes:
    return utf8(request.url)


def _base_url(auth: WebhookAuth, request: SignedRequest) -> bytes:
    return utf8(base_url(request.url))


def _path(auth: WebhookAuth, request: SignedRequest) -> bytes:
    url = request.url.partition("#")[0]
    scheme_end = url.find("://")
    rest = url[scheme_end + 3 :] if scheme_end >= 0 else url
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    target = rest[cut:]
    return utf8(target if target.startswith("/") else "/" + target)


def _method(auth: WebhookAuth, request: SignedRequest) -> bytes:
    return utf8(request.method.upper())


def _timestamp(auth: WebhookAuth, request: SignedRequest) -> bytes:
    return utf8(single_header(request, text(auth, "timestamp_header")))


def _nonce(auth: WebhookAuth, request: SignedRequest) -> bytes:
    return utf8(single_header(request, text(auth, "nonce_header")))


def _url_sorted_params(auth: WebhookAuth, request: SignedRequest) -> bytes:
    query = sorted(query_fields(request.url))
    form: list[tuple[str, str]] = []
    if request.body:
        if media_type(request) != FORM:
            raise WebhookAuthFailed(
                "the body is not form-encoded, so the signature cannot cover it"
            )
        form = sorted(form_fields(request.body))
    out = [base_url(request.url)]
    if query or form:
        out.append("?" + "&".join(f"{name}={value}" for name, value in query))
    if query and form:
        out.append(".")
    out.extend(name + value for name, value in form)
    return utf8("".join(out))


PARTS: Mapping[str, Part] = {
    "body": _body,
    "url": _url,
    "base_url": _base_url,
    "method": _method,
    "path": _path,
    "timestamp": _timestamp,
    "nonce": _nonce,
    "url_sorted_params": _url_sorted_params,
}


def string_to_sign(auth: WebhookAuth, request: SignedRequest) -> Signed:
    """The bytes ``string_to_sign`` describes for ``request``, and its timestamp if it has one."""
    template = text(auth, "string_to_sign")
    if not template or len(template) > MAX_TEMPLATE:
        raise WebhookAuthFailed("the WebhookAuth option string_to_sign is not valid")
    out: list[bytes] = []
    timestamp: str | None = None
    for segment in parse_template(template):
        if not isinstance(segment, Placeholder):
            out.append(utf8(segment))
            continue
        name = segment.name
        if name.startswith(HEADER_PART) and len(name) > len(HEADER_PART):
            out.append(utf8(single_header(request, name[len(HEADER_PART) :])))
            continue
        part = PARTS.get(name)
        if part is None or segment.optional:
            raise WebhookAuthFailed("the WebhookAuth option string_to_sign is not valid")
        value = part(auth, request)
        if name == "timestamp":
            timestamp = value.decode("utf-8", "surrogatepass")
        out.append(value)
    return b"".join(out), timestamp
