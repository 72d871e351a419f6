"""``hmac``: a keyed hash of what ``signed`` names, carried in a header (docs/format.md,
"WebhookAuth").

``signed`` is a table of small functions, one per keyword, each giving the signed bytes and the
signed timestamp (checked against the replay window) when there is one:

- ``body``: the raw body;
- ``url+body``: the full URL followed by the raw body;
- ``timestamp.body``: ``<timestamp>.<body>``, the timestamp from ``timestamp_header``;
- ``url+nonce``: the URL without its query (scheme, host, optional port and path: Plivo's
  "base URI") followed by the nonce from ``nonce_header``. Plivo's X-Plivo-Signature-V2 signs
  exactly that, as its documentation and its official SDKs do (python ``validate_signature``,
  node ``validateSignature``, java ``Utils.computeSignature`` all drop the query), so a callback
  to a URL with a query (a GET callback carries its parameters there) still verifies. The query
  is not covered by such a signature.

*(ext)* ``string_to_sign`` instead of ``signed`` builds the signed string from parts of the request
(``_string_to_sign``): Slack's ``v0:$timestamp$:$body$``, Sinch's ``$body$.$nonce$.$timestamp$``.

*(ext)* With ``secret_encoding: base64`` the secret is the base64 of the key bytes, after an
optional ``whsec_`` prefix (Standard Webhooks, as Svix and Surge issue them).

The header may carry several signatures separated by commas or spaces (``v1=…, v1=…`` during a
secret rotation); the request passes when any of them matches. With a ``prefix`` (``sha256=``)
only the parts that start with it are signatures; a prefix may itself hold a comma (Standard
Webhooks' ``v1,<sig> v1,<sig>``), so the space-separated parts are tried whole too. Comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

from server.engine import WebhookAuth

from ._encoding import from_base64, from_hex, utf8
from ._failed import WebhookAuthFailed
from ._options import choice, secret, text, tolerance
from ._request import SignedRequest, base_url, header_values, single_header
from ._string_to_sign import string_to_sign
from ._timestamps import check_window, parse_timestamp

__all__ = ["verify_hmac"]

_DIGESTS: Mapping[str, Callable[..., Any]] = {
    "sha256": hashlib.sha256,
    "sha1": hashlib.sha1,
    "sha512": hashlib.sha512,
}
_DECODERS: Mapping[str, Callable[[str], bytes | None]] = {"hex": from_hex, "base64": from_base64}
_SEPARATORS = re.compile(r"[,\s]+")
_SPACES = re.compile(r"\s+")
_STANDARD_WEBHOOKS_PREFIX = "whsec_"
_MAX_CANDIDATES = 32

Signed = tuple[bytes, str | None]  # the signed bytes, and the signed timestamp if any


def _body(auth: WebhookAuth, request: SignedRequest) -> Signed:
    return request.body, None


def _url_body(auth: WebhookAuth, request: SignedRequest) -> Signed:
    return utf8(request.url) + request.body, None


def _timestamp_body(auth: WebhookAuth, request: SignedRequest) -> Signed:
    timestamp = single_header(request, text(auth, "timestamp_header"))
    return utf8(timestamp) + b"." + request.body, timestamp


def _url_nonce(auth: WebhookAuth, request: SignedRequest) -> Signed:
    nonce = single_header(request, text(auth, "nonce_header"))
    return utf8(base_url(request.url)) + utf8(nonce), None


_SIGNED: Mapping[str, Callable[[WebhookAuth, SignedRequest], Signed]] = {
    "body": _body,
    "url+body": _url_body,
    "timestamp.body": _timestamp_body,
    "url+nonce": _url_nonce,
}


def _signed(auth: WebhookAuth, request: SignedRequest) -> Signed:
    if "string_to_sign" in auth.options:
        if "signed" in auth.options:  # msgbridge check refuses both; never guess which
            raise WebhookAuthFailed("the WebhookAuth options signed and string_to_sign conflict")
        return string_to_sign(auth, request)
    return _SIGNED[choice(auth, "signed", _SIGNED, "body")](auth, request)


def verify_hmac(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    key = _key(auth, properties)
    digest = _DIGESTS[choice(auth, "algorithm", _DIGESTS, "sha256")]
    decode = _DECODERS[choice(auth, "encoding", _DECODERS, "hex")]
    header = text(auth, "header")
    prefix = text(auth, "prefix", "")
    message, timestamp = _signed(auth, request)
    seconds = parse_timestamp(timestamp) if timestamp is not None else None

    values = [value.strip() for value in header_values(request, header) if value.strip()]
    if not values:
        raise WebhookAuthFailed(f"the {header} header is missing")
    expected = hmac.new(key, message, digest).digest()
    matched = False
    for candidate in _candidates(values, prefix):
        provided = decode(candidate)
        if provided is not None:
            matched |= hmac.compare_digest(expected, provided)
    if not matched:
        raise WebhookAuthFailed("the signature does not match")
    if seconds is not None:
        check_window(seconds, now=now, tolerance=tolerance(auth))


def _key(auth: WebhookAuth, properties: Mapping[str, str]) -> bytes:
    """The HMAC key: the secret's UTF-8 bytes, or (ext) the bytes its base64 stands for."""
    value = secret(auth, "secret", properties)
    if choice(auth, "secret_encoding", ("utf8", "base64"), "utf8") == "utf8":
        return utf8(value)
    value = value.strip()
    if value.startswith(_STANDARD_WEBHOOKS_PREFIX):
        value = value[len(_STANDARD_WEBHOOKS_PREFIX) :]
    key = from_base64(value)
    if not key:
        raise WebhookAuthFailed("the configured secret is not base64")
    return key


def _candidates(values: list[str], prefix: str) -> list[str]:
    """Each header value whole, its space-separated parts, then its comma- or space-separated
    parts, prefix removed."""
    parts: list[str] = []
    for value in values:
        parts.append(value)
        spaced = [part for part in _SPACES.split(value) if part and part != value]
        parts.extend(spaced)
        parts.extend(
            part
            for part in _SEPARATORS.split(value)
            if part and part != value and part not in spaced
        )
    candidates: list[str] = []
    for part in parts[:_MAX_CANDIDATES]:
        if prefix:
            if part[: len(prefix)].lower() != prefix.lower():
                continue
            part = part[len(prefix) :].strip()
        if part:
            candidates.append(part)
    return candidates
