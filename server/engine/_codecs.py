"""Text encodings by name: the filters of a request template (``$content|ucs2_hex$``) and the
``decode`` of a webhook model (docs/format.md, "Text encodings").

A name is a character set and a transfer form, ``<charset>_<form>``: the character sets are
``utf8`` (UTF-8), ``ucs2`` (UTF-16BE, which is UCS-2 for every character of the Basic
Multilingual Plane), ``latin1`` (ISO-8859-1), ``gsm7`` (GSM 03.38 septets, one per byte) and
``gsm7_packed`` (septets packed eight to seven bytes); the forms are ``hex``, ``base64`` and
``percent`` (each byte outside RFC 3986's unreserved set as ``%XX``; read back, ``+`` is a space,
as in a form). ``base64`` alone is ``utf8_base64``. Encoding and decoding are linear in the value;
the value is bounded by the body or template it came from.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ._gsm import gsm7_septets, gsm7_text, pack_septets, unpack_septets

__all__ = ["ENCODINGS", "decode_value", "encode_value"]

# Single-character classes and one fixed lookahead: a scan in linear time, whatever the value.
_NOT_HEX: Final = re.compile(r"[^0-9A-Fa-f]")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _gsm7_bytes(text: str) -> bytes:
    return gsm7_septets(text)


def _gsm7_packed_bytes(text: str) -> bytes:
    return pack_septets(gsm7_septets(text))


def _charset_encoder(codec: str, label: str) -> Callable[[str], bytes]:
    def encode(text: str) -> bytes:
        try:
            return text.encode(codec)
        except UnicodeEncodeError as e:
            ch = text[e.start]
            raise ValueError(
                f"character {e.start + 1} (U+{ord(ch):04X}) cannot be written in {label}"
            ) from None

    return encode


def _charset_decoder(codec: str, label: str) -> Callable[[bytes], str]:
    def decode(data: bytes) -> str:
        try:
            return data.decode(codec)
        except UnicodeDecodeError as e:
            raise ValueError(f"byte {e.start + 1} is not valid {label}: {e.reason}") from None

    return decode


def _decode_ucs2(data: bytes) -> str:
    if len(data) % 2:
        raise ValueError(f"UTF-16BE text has an even number of bytes, this has {len(data)}")
    return _charset_decoder("utf-16-be", "UTF-16BE")(data)


_CHARSETS: Final[Mapping[str, tuple[Callable[[str], bytes], Callable[[bytes], str]]]] = {
    "utf8": (_charset_encoder("utf-8", "UTF-8"), _charset_decoder("utf-8", "UTF-8")),
    # surrogatepass is not used: a lone surrogate is not text, in either direction
    "ucs2": (_charset_encoder("utf-16-be", "UTF-16BE"), _decode_ucs2),
    "latin1": (
        _charset_encoder("latin-1", "ISO-8859-1"),
        _charset_decoder("latin-1", "ISO-8859-1"),
    ),
    "gsm7": (_gsm7_bytes, gsm7_text),
    "gsm7_packed": (_gsm7_packed_bytes, lambda data: gsm7_text(unpack_septets(data))),
}


def _to_hex(data: bytes) -> str:
    return data.hex().upper()


def _from_hex(text: str) -> bytes:
    digits = text.strip()
    if len(digits) % 2:
        raise ValueError(f"hex needs an even number of digits, this has {len(digits)}")
    bad = _NOT_HEX.search(digits)
    if bad is not None:
        raise ValueError(f"character {bad.start() + 1} ({bad.group()!r}) is not a hex digit")
    return bytes.fromhex(digits)


def _to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not valid base64 (RFC 4648, with its padding)") from None


def _to_percent(data: bytes) -> str:
    return quote_from_bytes(data, safe="")


def _from_percent(text: str) -> bytes:
    if not text.isascii():
        position = next(i for i, ch in enumerate(text) if not ch.isascii())
        raise ValueError(f"character {position + 1} (U+{ord(text[position]):04X}) is not ASCII")
    bad = _BAD_ESCAPE.search(text)
    if bad is not None:
        raise ValueError(f"character {bad.start() + 1} ('%') is not followed by two hex digits")
    return unquote_to_bytes(text.replace("+", " "))


_FORMS: Final[Mapping[str, tuple[Callable[[bytes], str], Callable[[str], bytes]]]] = {
    "hex": (_to_hex, _from_hex),
    "base64": (_to_base64, _from_base64),
    "percent": (_to_percent, _from_percent),
}

_ALIASES: Final = {"base64": "utf8_base64"}

#: Every encoding name, for the checker and the schema.
ENCODINGS: Final = tuple(sorted({f"{c}_{f}" for c in _CHARSETS for f in _FORMS} | set(_ALIASES)))


def _split(name: str) -> tuple[str, str]:
    full = _ALIASES.get(name, name)
    charset, _, form = full.rpartition("_")
    if charset not in _CHARSETS or form not in _FORMS:
        raise KeyError(name)
    return charset, form


def encode_value(name: str, text: str) -> str:
    """``text`` written in the encoding ``name``; ValueError says why it cannot be."""
    charset, form = _split(name)
    return _FORMS[form][0](_CHARSETS[charset][0](text))


def decode_value(name: str, value: str) -> str:
    """The text that ``value`` encodes in the encoding ``name``; ValueError says why it does
    not."""
    charset, form = _split(name)
    return _CHARSETS[charset][1](_FORMS[form][1](value))
