"""Signed, expiring media URLs: ``/media/<id>?e=<expiry>&s=<signature>``.

The signature is the HMAC-SHA256 of the media id and the expiry (Unix seconds), base64url without
padding, under a key derived from the operator's key file for this purpose only
(:meth:`~server.security.secrets.SecretBox.derived_keys`): never the key that seals secrets. The
first key signs and every key verifies, so rotating the key file (a new key first, the old ones
kept below it) leaves the URLs already given out valid until they expire. A URL is good only as
signed: another id, another expiry or another signature does not verify, nor does a URL whose
expiry has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Sequence

from server.security.secrets import SecretBox
from server.sidecar._routes import (
    MEDIA_EXPIRES_PARAM,
    MEDIA_SIGNATURE_PARAM,
    is_media_id,
    media_path,
)

__all__ = ["MEDIA_KEY_PURPOSE", "MediaSigner"]

logger = logging.getLogger(__name__)

#: The purpose the media keys are derived for.
MEDIA_KEY_PURPOSE = b"media-url-hmac"

# What is signed starts with this: a MAC of this module is never valid for another message.
_DOMAIN = b"msgbridge media url v1\n"
# An expiry is at most 19 decimal digits (it fits a signed 64-bit integer).
_MAX_EXPIRY = 10**19 - 1
_SIGNATURE_LENGTH = 43  # 32 bytes in base64url without padding


def _message(media_id: str, expires_at: int) -> bytes:
    # The id holds no '\n' (is_media_id), so id and expiry cannot be shifted into one another.
    return b"%s%s\n%d" % (_DOMAIN, media_id.encode("ascii"), expires_at)


def _mac(key: bytes, media_id: str, expires_at: int) -> bytes:
    return hmac.new(key, _message(media_id, expires_at), hashlib.sha256).digest()


def _encode(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


class MediaSigner:
    """Signs and verifies media URLs with ``keys`` (the first signs; every one verifies)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("MediaSigner needs at least one key")
        if any(len(key) < 32 for key in keys):
            raise ValueError("a media signing key must be at least 32 bytes")
        self._keys = tuple(keys)

    @classmethod
    def from_box(cls, box: SecretBox) -> MediaSigner:
        """The signer over the key file's keys, derived for media URLs."""
        return cls(box.derived_keys(MEDIA_KEY_PURPOSE))

    def signature(self, media_id: str, expires_at: int) -> str:
        """The signature of ``media_id`` until ``expires_at`` (Unix seconds), base64url."""
        _check(media_id, expires_at)
        return _encode(_mac(self._keys[0], media_id, expires_at))

    def sign(self, media_id: str, expires_at: int) -> str:
        """The path and query of the signed URL: ``/media/<id>?e=<expires_at>&s=<signature>``."""
        signature = self.signature(media_id, expires_at)
        return (
            f"{media_path(media_id)}?{MEDIA_EXPIRES_PARAM}={expires_at}"
            f"&{MEDIA_SIGNATURE_PARAM}={signature}"
        )

    def url(self, public_url: str, media_id: str, expires_at: int) -> str:
        """The whole signed URL under ``public_url`` (the sidecar's ``--public-url``)."""
        return f"{public_url.rstrip('/')}{self.sign(media_id, expires_at)}"

    def verify(self, media_id: str, expires_at: int, signature: str, now: float) -> bool:
        """Whether ``signature`` is one of these keys' for ``media_id`` and ``expires_at``, and
        ``now`` (Unix seconds) is before ``expires_at``. Compared in constant time."""
        if not is_media_id(media_id) or not 0 <= expires_at <= _MAX_EXPIRY:
            return False
        given = signature.encode("utf-8", "replace")
        valid = False
        # Every key is tried, whatever matched before: the time taken tells nothing.
        for key in self._keys:
            expected = _encode(_mac(key, media_id, expires_at)).encode("ascii")
            valid |= hmac.compare_digest(expected, given)
        return valid and len(given) == _SIGNATURE_LENGTH and now < expires_at


def _check(media_id: str, expires_at: int) -> None:
    if not is_media_id(media_id):
        raise ValueError("a media id is 1 to 128 of A-Z a-z 0-9 - _")
    if not 0 <= expires_at <= _MAX_EXPIRY:
        raise ValueError(f"expires_at must be from 0 to {_MAX_EXPIRY}")
