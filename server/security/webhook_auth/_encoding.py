"""Lenient decoding of signatures as providers write them; ``None`` when not decodable."""

from __future__ import annotations

import base64
import binascii

__all__ = ["from_base64", "from_hex", "utf8"]


def from_base64(value: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional."""
    normal = value.replace("-", "+").replace("_", "/")
    normal += "=" * (-len(normal) % 4)
    try:
        return base64.b64decode(normal, validate=True)
    except (binascii.Error, ValueError):
        return None


def from_hex(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def utf8(value: str) -> bytes:
    """UTF-8 bytes of any Python string (a lone surrogate is kept, never an exception)."""
    return value.encode("utf-8", "surrogatepass")
