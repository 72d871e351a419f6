"""Masking known secret values in text that came from a provider.

A provider may echo what it was sent: an error body quoting our ``Authorization`` header, a
property value, a token. Whatever of a provider's answer the gateway keeps or returns (an error's
excerpt, a refusal's reason, a Subscribe error, a token endpoint's description) goes through a
:class:`SecretMask` first, which replaces every known secret value by :data:`MASK`.

A value is found in the forms a provider may echo it in: verbatim; percent-encoded (each
character other than an ASCII letter or digit as it is or escaped, either hex case, ``+`` for a
space); JSON-escaped (``\\uXXXX`` either case, ``\\"``, ``\\/`` …); XML/HTML-escaped (``&amp;``,
``&#39;`` …); and base64 (standard and URL-safe, with or without padding), which covers the
``user:pass`` of HTTP Basic when that string is one of the values. Values shorter than
:data:`MIN_LENGTH` are not masked: they would hide ordinary words and numbers while revealing next
to nothing.

Mask before cutting: :meth:`SecretMask.excerpt` masks a window of a text and only then shortens
it, so that a secret cut in two by the limit cannot leave its first half behind; where the window
itself ends inside the text, its last characters, where a secret may begin, are dropped.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MASK", "MIN_LENGTH", "SecretMask"]

#: What a secret value is replaced by.
MASK = "***"
#: The shortest value that is masked.
MIN_LENGTH = 4

# Characters that a JSON, XML or form/URL encoder may write as another sequence.
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_JSON_SHORT |= {"\r": "\\r", "\t": "\\t"}
_XML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _hex(value: int, width: int) -> str:
    """A regular expression for ``value`` in hexadecimal, letters in either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}X}")


def _json_units(char: str) -> list[int]:
    encoded = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(encoded[i : i + 2], "big") for i in range(0, len(encoded), 2)]


def _char(char: str) -> tuple[str, int]:
    """A regular expression for one character in any of its encodings, and the longest text
    it matches."""
    if char.isascii() and char.isalnum():
        return char, 1
    utf8 = char.encode("utf-8", "surrogatepass")
    units = _json_units(char)
    forms = [
        (re.escape(char), 1),
        ("".join(f"%{_hex(b, 2)}" for b in utf8), 3 * len(utf8)),
        ("".join(f"\\\\u{_hex(u, 4)}" for u in units), 6 * len(units)),
        (f"&#{ord(char)};", len(f"&#{ord(char)};")),
        (f"&#[xX]{_hex(ord(char), 1)};", len(f"&#x{ord(char):X};")),
    ]
    if char == " ":
        forms.append((r"\+", 1))
    for table in (_JSON_SHORT, _XML_NAMED):
        if char in table:
            forms.append((re.escape(table[char]), len(table[char])))
    return "(?:" + "|".join(f for f, _ in forms) + ")", max(n for _, n in forms)


@functools.lru_cache(maxsize=1024)
def _compile(value: str) -> tuple[re.Pattern[str], int]:
    """The pattern finding ``value`` in any of its encodings, and the longest text it matches."""
    parts = [_char(c) for c in value]
    return re.compile("".join(p for p, _ in parts)), sum(n for _, n in parts)


@functools.lru_cache(maxsize=1024)
def _base64_forms(value: str) -> frozenset[str]:
    """The base64 forms of ``value`` at least :data:`MIN_LENGTH` long (cached: a mask is made
    per provider call, of the same few values)."""
    forms: set[str] = set()
    for encoding in ("utf-8", "latin-1"):
        try:
            raw = value.encode(encoding)
        except UnicodeEncodeError:
            continue
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            # With its padding and without (a provider may drop it).
            forms |= {encoded.decode("ascii"), encoded.decode("ascii").rstrip("=")}
    return frozenset(form for form in forms if len(form) >= MIN_LENGTH)


@functools.lru_cache(maxsize=1024)
def _longest(values: frozenset[str]) -> int:
    return max((_compile(v)[1] for v in values), default=0)


@functools.lru_cache(maxsize=1024)
def _patterns(values: frozenset[str]) -> tuple[re.Pattern[str], ...]:
    """The patterns of a mask's values (cached: a mask is asked about many texts)."""
    return tuple(_compile(v)[0] for v in values)


@dataclass(frozen=True, slots=True)
class SecretMask:
    """Replaces every known secret value, in every form this module's docstring lists, by
    :data:`MASK`. Build one with :meth:`of`; it is cheap (patterns are cached per value)."""

    values: frozenset[str] = frozenset()

    @classmethod
    def of(cls, values: Iterable[str | None]) -> SecretMask:
        """The mask of ``values`` (``None``, empty and too short values are left out)."""
        kept: set[str] = set()
        for value in values:
            if value is None or len(value) < MIN_LENGTH:
                continue
            kept.add(value)
            kept |= _base64_forms(value)
        return cls(frozenset(kept))

    def with_values(self, values: Iterable[str | None]) -> SecretMask:
        """This mask with ``values`` masked too."""
        return SecretMask(self.values | SecretMask.of(values).values)

    @property
    def longest(self) -> int:
        """The longest text one secret can occupy in any of its forms (0 without secrets)."""
        return _longest(self.values)

    def __call__(self, text: str, *, cut: bool = False) -> str:
        """``text`` with every secret replaced by :data:`MASK`.

        ``cut`` says that ``text`` is the start of a longer text: its last characters, where
        a secret cut short may begin, are dropped (unless they are part of a masked secret).
        """
        if not self.values:
            return text
        # ``search`` first: it finds a pattern's literal start far faster than ``finditer``
        # scans, and most texts hold no secret at all.
        spans = [
            m.span()
            for pattern in _patterns(self.values)
            if (first := pattern.search(text)) is not None
            for m in pattern.finditer(text, first.start())
        ]
        end = len(text)
        if cut:
            end = max(0, len(text) - (self.longest - 1))
        if not spans:  # the common case: no secret in the text
            return text[:end]
        pieces: list[str] = []
        position = 0  # the text before it is in pieces
        for start, stop in sorted(spans):
            if start >= end:
                break
            if stop <= position:
                continue  # inside a secret already masked
            if start > position or not pieces:
                pieces += [text[position:start], MASK]
            # else it overlaps the secret just masked: one mask covers both
            position = stop
        if position < end:
            pieces.append(text[position:end])
        return "".join(pieces)

    def excerpt(self, body: bytes | str, limit: int, *, truncated: bool = False) -> str:
        """At most ``limit`` characters of ``body`` (bytes are read as UTF-8) for a message:
        masked, then its whitespace runs made single spaces, then cut. ``truncated`` says that
        ``body`` is itself only the start of what the provider sent.

        Only a window at the start of ``body`` is read, so that a provider's megabyte costs no
        more than its first kilobytes."""
        window = 4 * (limit + self.longest)
        start = body[:window]
        text = start.decode("utf-8", "replace") if isinstance(start, bytes) else start
        masked = self(text, cut=truncated or len(body) > window)
        return " ".join(masked.split())[:limit]
