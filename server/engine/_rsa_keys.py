"""(ext) The public key of an ``rsa`` WebhookAuth (docs/format.md, "WebhookAuth"), read once and
kept within bounds.

One parser serves the three places that read such a key: ``msgbridge check`` (a key written in
the definition), installing or updating an installation (a key in a property), and verifying a
webhook (server/security/webhook_auth/_rsa.py). A key is a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo)
or ``RSA PUBLIC KEY`` (PKCS#1), or the base64 of the DER of either without its armour (as
MessageMedia's Signature Key Management API returns it). Its modulus is 2,048 to 8,192 bits and
its public exponent at most 32 bits, so that one verification costs a bounded, small time.
"""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

__all__ = ["RSA_MAX_BITS", "RSA_MIN_BITS", "RsaKeyError", "rsa_public_key"]

RSA_MIN_BITS = 2_048
RSA_MAX_BITS = 8_192
_MAX_EXPONENT_BITS = 32
_MAX_TEXT = 16_384  # far above the PEM of an 8,192-bit key (about 1,500 characters)


class RsaKeyError(ValueError):
    """The text is not a usable RSA public key; the message says why and never repeats it."""


@functools.lru_cache(maxsize=64)
def rsa_public_key(text: str) -> RSAPublicKey:
    """The RSA public key ``text`` holds; raises :class:`RsaKeyError` when it holds none within
    the bounds."""
    value = text.strip()
    if not value:
        raise RsaKeyError("the public key is empty")
    if len(value) > _MAX_TEXT:
        raise RsaKeyError("the public key is too long to be an RSA key of at most 8,192 bits")
    try:
        key = _load(value)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise RsaKeyError("the public key is not a PEM or base64 DER RSA public key") from None
    if not isinstance(key, RSAPublicKey):
        raise RsaKeyError("the public key is not an RSA key")
    if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
        raise RsaKeyError(
            f"the RSA key has {key.key_size} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted"
        )
    if key.public_numbers().e.bit_length() > _MAX_EXPONENT_BITS:
        raise RsaKeyError("the RSA key's public exponent is larger than 32 bits")
    return key


def _load(value: str) -> object:
    data = value.encode("ascii", "strict")  # a key is ASCII; anything else raises ValueError
    if data.startswith(b"-----BEGIN"):
        return load_pem_public_key(data)
    try:
        der = base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    return load_der_public_key(der)
