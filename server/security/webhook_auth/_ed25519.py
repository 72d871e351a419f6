"""``ed25519``: the Telnyx scheme, an Ed25519 signature over ``<timestamp>|<body>``
(docs/format.md, "WebhookAuth").

The public key (``public_key``, usually a property) is base64 of the 32 raw key bytes as Telnyx
shows it; a PEM or base64 DER SubjectPublicKeyInfo and 64 hex digits are accepted too. The
signature is base64 in ``signature_header`` (default ``telnyx-signature-ed25519``), the timestamp
in ``timestamp_header`` (default ``telnyx-timestamp``), which must be within ``tolerance_s``
(default 300) of now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from server.engine import WebhookAuth

from ._encoding import from_base64, utf8
from ._failed import WebhookAuthFailed
from ._options import secret, text, tolerance
from ._request import SignedRequest, single_header
from ._timestamps import check_window, parse_timestamp

__all__ = ["verify_ed25519"]

_RAW_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def verify_ed25519(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    key = _public_key(secret(auth, "public_key", properties))
    signature_header = text(auth, "signature_header", "telnyx-signature-ed25519")
    signature_text = single_header(request, signature_header)
    timestamp = single_header(request, text(auth, "timestamp_header", "telnyx-timestamp"))
    seconds = parse_timestamp(timestamp)
    signature = from_base64(signature_text)
    if signature is None or len(signature) != _SIGNATURE_BYTES:
        raise WebhookAuthFailed("the signature does not match")
    try:
        key.verify(signature, utf8(timestamp) + b"|" + request.body)
    except InvalidSignature:
        raise WebhookAuthFailed("the signature does not match") from None
    check_window(seconds, now=now, tolerance=tolerance(auth))


def _public_key(value: str) -> Ed25519PublicKey:
    value = value.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = load_pem_public_key(utf8(value))
        elif _HEX_KEY.fullmatch(value):
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
        else:
            raw = from_base64(value) or b""
            if len(raw) == _RAW_KEY_BYTES:
                key = Ed25519PublicKey.from_public_bytes(raw)
            else:
                key = load_der_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise WebhookAuthFailed("the configured public key is not an Ed25519 key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise WebhookAuthFailed("the configured public key is not an Ed25519 key")
    return key
