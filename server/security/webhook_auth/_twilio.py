"""``twilio``: HMAC-SHA1 with the auth token over the full URL and the sorted form parameters.

What is signed (Twilio's "Secure webhooks" page and its official helper libraries):

- a form-encoded body: the full URL, then every POST parameter sorted by name (values of a
  repeated name sorted too), each written as name followed by value, with no separators;
- a body whose SHA-256 is in the URL's ``bodySHA256`` query parameter (Twilio's JSON webhooks):
  the full URL alone, once the body's hash is checked against that parameter;
- no body: the full URL alone.

Any other body would not be covered by the signature, so it is refused. The digest is base64 in
the ``header`` (default ``X-Twilio-Signature``). As Twilio's own validators do, the URL is also
tried without its port and with the scheme's default port, since proxies add or drop it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from server.engine import WebhookAuth

from ._encoding import utf8
from ._failed import WebhookAuthFailed
from ._options import secret, text
from ._request import FORM, SignedRequest, form_fields, header_values, media_type, query_fields

__all__ = ["verify_twilio"]

_BODY_HASH = "bodySHA256"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def verify_twilio(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    token = utf8(secret(auth, "auth_token", properties))
    header = text(auth, "header", "X-Twilio-Signature")
    provided = [utf8(v.strip()) for v in header_values(request, header) if v.strip()]
    if not provided:
        raise WebhookAuthFailed(f"the {header} header is missing")
    signed_parameters = _signed_parameters(request)
    matched = False
    for url in _url_variants(request.url):
        digest = hmac.new(token, utf8(url + signed_parameters), hashlib.sha1).digest()
        expected = base64.b64encode(digest)
        for signature in provided:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise WebhookAuthFailed("the signature does not match")


def _signed_parameters(request: SignedRequest) -> str:
    """What follows the URL in the signed string."""
    hashes = [value for name, value in query_fields(request.url) if name == _BODY_HASH]
    if hashes:
        actual = hashlib.sha256(request.body).hexdigest().encode()
        if len(hashes) > 1 or not hmac.compare_digest(actual, utf8(hashes[0].lower())):
            raise WebhookAuthFailed("the body does not match the bodySHA256 in the URL")
        return ""
    if not request.body:
        return ""
    if media_type(request) != FORM:
        raise WebhookAuthFailed("the body is neither form-encoded nor hashed in the URL")
    return "".join(name + value for name, value in sorted(form_fields(request.body)))


def _url_variants(url: str) -> tuple[str, ...]:
    """The URL as given, without its port, and with the scheme's default port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return (url,)
    start = url.find("//") + 2
    if start < 2 or not parts.netloc or not url[start:].startswith(parts.netloc):
        return (url,)
    head, rest = url[:start], url[start + len(parts.netloc) :]
    variants = [url]
    if port is not None:
        variants.append(head + parts.netloc[: parts.netloc.rfind(":")] + rest)
    elif parts.scheme in _DEFAULT_PORTS:
        variants.append(f"{head}{parts.netloc}:{_DEFAULT_PORTS[parts.scheme]}{rest}")
    return tuple(dict.fromkeys(variants))
