"""The placeholder grammar (docs/format.md, "Placeholders"): ``$name$``, ``$$`` for a literal
``$``, ``$name?$`` optional, ``$name|filter$`` a value through a filter (docs/format.md, "Text
encodings" and "Value filters"; the checker bounds the chain, the renderer and the matcher apply
it left to right).

A template string is parsed once into segments: literal text and :class:`Placeholder` objects.
Values substituted later are never re-scanned, because only the template is ever parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "MAX_FILTER_TEXT",
    "MAX_NAME",
    "Placeholder",
    "Segment",
    "has_stray_dollar",
    "parse_template",
    "placeholders_in",
    "sole_placeholder",
]

MAX_NAME = 64
#: (ext) Characters of a placeholder's filters, after the name's ``|`` (docs/format.md, "Limits").
MAX_FILTER_TEXT = 256


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``$name$``; ``optional`` for ``$name?$`` (an optional webhook capture: docs/format.md,
    "Webhook models")."""

    name: str
    optional: bool = False
    filters: tuple[str, ...] = ()  # (ext) "$content|ucs2_hex$": docs/format.md, "Text encodings"

    @property
    def shown(self) -> str:
        """The placeholder as written (for messages)."""
        inner = "|".join((self.name, *self.filters))
        return f"${inner}?$" if self.optional else f"${inner}$"


Segment = str | Placeholder


@lru_cache(maxsize=4096)
def _scan(text: str) -> tuple[tuple[Segment, ...], bool]:
    segments: list[Segment] = []
    literal: list[str] = []
    stray = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$":
            literal.append(ch)
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "$":
            literal.append("$")
            i += 2
            continue
        end = text.find("$", i + 1)
        name = text[i + 1 : end] if end != -1 else ""
        optional = len(name) > 1 and name.endswith("?")
        if optional:
            name = name[:-1]
        if end == -1 or not name or _too_long(name) or "\n" in name:
            stray = True
            literal.append("$")
            i += 1
            continue
        if literal:
            segments.append("".join(literal))
            literal = []
        name, *filters = name.split("|")
        segments.append(Placeholder(name, optional, tuple(filters)))
        i = end + 1
    if literal:
        segments.append("".join(literal))
    return tuple(segments), stray


def _too_long(inner: str) -> bool:
    name, _, filters = inner.partition("|")
    return len(name) > MAX_NAME or len(filters) > MAX_FILTER_TEXT


def parse_template(text: str) -> tuple[Segment, ...]:
    """Split ``text`` into literal strings and placeholders.

    ``$$`` is a literal ``$``. A ``$`` that does not open a well-formed placeholder (no closing
    ``$``, an empty name, a name over 64 characters, filters over 256, or a newline) is kept as
    literal text; the loader reports it (:func:`has_stray_dollar`). Adjacent literals are merged.
    """
    return _scan(text)[0]


def has_stray_dollar(text: str) -> bool:
    """True when a ``$`` in ``text`` opens no placeholder and is not written ``$$``."""
    return _scan(text)[1]


def sole_placeholder(text: str) -> Placeholder | None:
    """The placeholder when ``text`` is exactly one placeholder and nothing else."""
    segments = parse_template(text)
    if len(segments) == 1 and isinstance(segments[0], Placeholder):
        return segments[0]
    return None


def placeholders_in(text: str) -> tuple[Placeholder, ...]:
    return tuple(s for s in parse_template(text) if isinstance(s, Placeholder))
