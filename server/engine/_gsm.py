"""The GSM 03.38 default alphabet: which text fits it, how many SMS segments a text takes, and its
septets (docs/format.md, "Text encodings").

Pure functions, linear in the text. A text whose every character is in the default alphabet or its
extension table is ``GSM-7``; any other text is ``UCS-2``. An extension character (``€``, ``[``,
``{``…) is sent as the escape septet 0x1B and its code, so it counts two septets. A single SMS
holds 160 septets or 70 UCS-2 units (UTF-16 code units: a character outside the Basic Multilingual
Plane, an emoji, counts two); a longer text is split into parts of 153 septets or 67 units, the
rest of each part carrying the concatenation header, and a part never splits an escape pair or a
surrogate pair.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal

__all__ = [
    "GSM7",
    "UCS2",
    "Encoding",
    "gsm7_septets",
    "gsm7_text",
    "pack_septets",
    "segment_count",
    "segment_parts",
    "text_encoding",
    "unpack_septets",
]

Encoding = Literal["GSM-7", "UCS-2"]
GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

# The default alphabet in septet order (0x1B is the escape to the extension table: never text).
_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: character → the septet that follows the escape.
_EXTENSION: Final = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_ESCAPE: Final = 0x1B
_SEPTET_OF: Final = {ch: i for i, ch in enumerate(_BASIC) if i != _ESCAPE}
_EXTENDED_BY_SEPTET: Final = {code: ch for ch, code in _EXTENSION.items()}
# Searched in C, so that a long text costs no Python step per character unless it needs one.
_NOT_GSM7: Final = re.compile(
    "[^" + re.escape("".join(_SEPTET_OF)) + re.escape("".join(_EXTENSION)) + "]"
)
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")

_SINGLE: Final = {GSM7: 160, UCS2: 70}
_PART: Final = {GSM7: 153, UCS2: 67}


def _gsm_units(ch: str) -> int:
    """Septets a character takes in GSM-7; 0 when it is not in the alphabet."""
    if ch in _SEPTET_OF:
        return 1
    if ch in _EXTENSION:
        return 2
    return 0


def text_encoding(text: str) -> Encoding:
    """``GSM-7`` when every character of ``text`` is in the default alphabet or its extension
    table, else ``UCS-2``."""
    return UCS2 if _NOT_GSM7.search(text) else GSM7


def _units(text: str, encoding: Encoding) -> list[int]:
    if encoding == GSM7:
        return [_gsm_units(ch) for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segment_count(text: str, encoding: Encoding | None = None) -> int:
    """How many SMS segments ``text`` takes in ``encoding`` (default: its own). An empty text is
    one segment. A text of one-unit characters only (no extension character in GSM-7, no
    character outside the Basic Multilingual Plane in UCS-2) is counted without a step per
    character; any other is walked once, without a list of its units."""
    chosen = encoding or text_encoding(text)
    if chosen == GSM7:
        if _NOT_GSM7.search(text):
            raise ValueError("the text does not fit the GSM 03.38 alphabet")
        double = any(ch in text for ch in _EXTENSION)
    else:
        double = _ASTRAL.search(text) is not None
    if not double:
        length = len(text)
        return 1 if length <= _SINGLE[chosen] else math.ceil(length / _PART[chosen])
    limit = _PART[chosen]
    total, parts, used = 0, 1, 0
    for ch in text:  # a character's units stay in one part
        size = (2 if ch in _EXTENSION else 1) if chosen == GSM7 else (2 if ord(ch) > 0xFFFF else 1)
        total += size
        if used + size > limit:
            parts, used = parts + 1, 0
        used += size
    return 1 if total <= _SINGLE[chosen] else parts


def segment_parts(text: str, max_segments: int, most: int) -> list[int]:
    """Where ``text`` is cut so that each part takes at most ``max_segments`` SMS segments in
    the whole text's encoding: the end index of each part, the last one ``len(text)``. Each part
    is as long as it can be (a character's units stay in one part, so an escape pair or a
    surrogate pair is never cut); a cut inside a word is then moved back to just after the
    part's last white space when that keeps at least half of the part (docs/format.md,
    "Several requests per send"). An empty text is no part. Past ``most`` parts the cutting
    stops (the caller refuses so many), so the work is bounded by ``most`` parts whatever the
    text's length."""
    chosen = text_encoding(text)
    units = _units(text, chosen)
    ends: list[int] = []
    start, end = 0, len(text)
    while start < end and len(ends) <= most:
        stop = _fit(units, start, chosen, max_segments)
        ends.append(prefer_space(text, start, stop))
        start = ends[-1]
    return ends


def _fit(units: list[int], start: int, encoding: Encoding, max_segments: int) -> int:
    """The end of the longest part from ``start`` that fits ``max_segments`` segments."""
    if max_segments == 1:
        limit, segments = _SINGLE[encoding], 1  # a part sent alone: one whole SMS
    else:
        limit, segments = _PART[encoding], max_segments
    used, position, count = 0, start, 1
    while position < len(units):
        size = units[position]
        if used + size > limit:
            if count == segments:
                break
            count, used = count + 1, 0
        used += size
        position += 1
    return position


def prefer_space(text: str, start: int, stop: int) -> int:
    """``stop``, or just after the last white space of ``text[start:stop]`` when the text goes
    on after ``stop`` with a character that is not white space and that keeps at least half of
    the part."""
    if stop >= len(text) or text[stop].isspace():
        return stop
    half = start + (stop - start + 1) // 2
    for position in range(stop - 1, half - 2, -1):
        if text[position].isspace():
            return position + 1
    return stop


def gsm7_septets(text: str) -> bytes:
    """The unpacked septets of ``text``, one per byte; ValueError names the first character that
    does not fit."""
    out = bytearray()
    for position, ch in enumerate(text):
        septet = _SEPTET_OF.get(ch)
        if septet is not None:
            out.append(septet)
            continue
        code = _EXTENSION.get(ch)
        if code is None:
            raise ValueError(
                f"character {position + 1} (U+{ord(ch):04X}) is not in the GSM 03.38 alphabet"
            )
        out += bytes((_ESCAPE, code))
    return bytes(out)


def gsm7_text(septets: bytes) -> str:
    """The text of unpacked septets; ValueError for a byte over 0x7F or an unknown escape."""
    out: list[str] = []
    escaped = False
    for position, septet in enumerate(septets):
        if septet > 0x7F:
            raise ValueError(f"byte {position + 1} (0x{septet:02X}) is not a GSM-7 septet")
        if escaped:
            ch = _EXTENDED_BY_SEPTET.get(septet)
            if ch is None:
                raise ValueError(
                    f"septet {position + 1} (0x{septet:02X}) is not in the GSM-7 extension table"
                )
            out.append(ch)
            escaped = False
        elif septet == _ESCAPE:
            escaped = True
        else:
            out.append(_BASIC[septet])
    if escaped:
        raise ValueError("the text ends with an escape septet (0x1B) and no character")
    return "".join(out)


def pack_septets(septets: bytes) -> bytes:
    """Septets packed eight to seven bytes, least significant bits first (3GPP TS 23.038)."""
    out = bytearray()
    buffer = bits = 0
    for septet in septets:
        buffer |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(buffer & 0xFF)
            buffer >>= 8
            bits -= 8
    if bits:
        out.append(buffer & 0xFF)
    return bytes(out)


def unpack_septets(packed: bytes) -> bytes:
    """The septets of packed bytes. When the bytes hold a whole number of groups of seven, the
    last septet may be the padding of a text one septet shorter: a final 0x00 there is dropped."""
    out = bytearray()
    buffer = bits = 0
    for byte in packed:
        buffer |= byte << bits
        bits += 8
        while bits >= 7:
            out.append(buffer & 0x7F)
            buffer >>= 7
            bits -= 7
    if packed and len(packed) % 7 == 0 and out and out[-1] == 0:
        del out[-1]
    return bytes(out)
