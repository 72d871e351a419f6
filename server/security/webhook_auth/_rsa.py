"""(ext) ``rsa``: an RSA signature (PKCS#1 v1.5) with the provider's public key over a signed
string, base64 in a header (docs/format.md, "WebhookAuth").

- ``public_key``: a template, usually a property; a PEM or base64 DER RSA public key of 2,048
  to 8,192 bits, read by the engine's one parser (server/engine/_rsa_keys.py), which also serves
  ``msgbridge check`` and installing;
- ``header``: the header that carries the signature, base64 (standard or URL-safe);
- ``algorithm``: the hash signed, ``sha256`` (default), ``sha224`` or ``sha512``;
- ``string_to_sign``: what is signed, the same template as an ``hmac``'s (``_string_to_sign``),
  ``$body$`` when absent. MessageMedia signs ``"$method$ $path$ HTTP/1.1$header:Date$$body$"``.

A signature whose length is not the key's is refused before any arithmetic, and the key's size
and exponent are bounded, so a verification costs at most one 8,192-bit public-key operation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from server.engine import WebhookAuth
from server.engine._rsa_keys import RsaKeyError, rsa_public_key

from ._encoding import from_base64
from ._failed import WebhookAuthFailed
from ._options import choice, secret, text, tolerance
from ._request import SignedRequest, single_header
from ._string_to_sign import string_to_sign
from ._timestamps import check_window, parse_timestamp

__all__ = ["verify_rsa"]

_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha224": hashes.SHA224,
    "sha512": hashes.SHA512,
}


def verify_rsa(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    try:
        key = rsa_public_key(secret(auth, "public_key", properties))
    except RsaKeyError as error:
        raise WebhookAuthFailed(f"the configured public_key is not usable: {error}") from None
    algorithm = _HASHES[choice(auth, "algorithm", _HASHES, "sha256")]()
    header = text(auth, "header")
    if "string_to_sign" in auth.options:
        message, timestamp = string_to_sign(auth, request)
    else:
        message, timestamp = request.body, None
    seconds = parse_timestamp(timestamp) if timestamp is not None else None
    signature = from_base64(single_header(request, header))
    if signature is None or len(signature) != (key.key_size + 7) // 8:
        raise WebhookAuthFailed("the signature does not match")
    try:
        key.verify(signature, message, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise WebhookAuthFailed("the signature does not match") from None
    if seconds is not None:
        check_window(seconds, now=now, tolerance=tolerance(auth))
