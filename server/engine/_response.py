"""Mapping a provider's 2xx answer to the outcome of a send (docs/format.md, "response_map").

The ``response_map`` is a pattern tree laid over the JSON body: an object pattern descends by key,
a list pattern ``[p]`` applies ``p`` to the first element (``[p0, p1]`` to the first two), a
``$name$`` captures the scalar found there (numbers as decimal text, ``true``/``false``, a list of
scalars as a tuple; an object, or ``null``, captures nothing). Every literal — a string, a number,
a boolean, the literal parts of ``"id:$messageid$"`` — is a success condition compared as text:
when one does not match, or its key is missing, the provider refused the message although it
answered 2xx (``accepted`` is False) and ``$error$``, if captured, says why.

A capture that finds nothing does not fail the send: the message id is then unknown. A bare
string map (``"$messageid$"``) is laid over the whole text body, stripped. A body that is not JSON
under an object or list map is missing everything: accepted only when the map has no literal.
Nothing here raises, whatever the body.

An answer whose Content-Type is XML (``application/xml``, ``text/xml``, ``…+xml``) is read into
the tree docs/format.md, "XML bodies" describes, by the same hardened parser as webhook bodies;
an object or list map is laid over that tree as over JSON. Only an answer of at most
:data:`MAX_XML_ANSWER` bytes is read: answers are mapped on the event loop, and building the tree
costs about 0.3 ms per KiB where JSON's C parser costs a hundredth of that. A send's answer is a
few hundred bytes; a longer XML answer has none of the map's keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from ._model import Frozen
from ._patterns import MixedText, as_text
from ._placeholders import Placeholder, parse_template
from ._xml import XmlError, is_xml, parse_xml

__all__ = ["MAX_XML_ANSWER", "Capture", "ResponseOutcome", "map_response", "read_answer"]

Capture = str | tuple[str, ...]

_EXCERPT = 80
#: The longest XML answer that is read (docs/format.md, "XML bodies").
MAX_XML_ANSWER = 8 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseOutcome:
    """What the provider's answer says about a send.

    ``accepted`` is False when a literal success condition of the map failed (or its key was
    missing); ``message_id`` is the ``$messageid$`` capture (None: unknown); ``error`` the
    ``$error$`` capture; ``captures`` every capture by name; ``reason`` which condition failed
    and what was found there (for the operator; None when accepted).
    """

    accepted: bool
    message_id: str | None
    error: str | None
    captures: Mapping[str, Capture]
    reason: str | None = None


_ACCEPTED_UNKNOWN = ResponseOutcome(
    accepted=True, message_id=None, error=None, captures=MappingProxyType({})
)


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


@lru_cache(maxsize=1024)
def _mixed(pattern: str) -> MixedText:
    """The linear matcher of a mixed string, the one webhook patterns use (no regex)."""
    return MixedText(parse_template(pattern))


@dataclass(slots=True)
class _Walk:
    captures: dict[str, Capture] = field(default_factory=dict)
    reason: str | None = None

    def capture(self, name: str, value: Capture) -> None:
        self.captures.setdefault(name, value)

    def fail(self, where: str, reason: str) -> None:
        if self.reason is None:
            self.reason = f"{where or '/'}: {reason}"

    def walk(self, pattern: Frozen, value: object, present: bool, where: str) -> None:
        if isinstance(pattern, Mapping):
            found = value if present and isinstance(value, dict) else None
            for key, inner in pattern.items():
                here = f"{where}/{key.replace('~', '~0').replace('/', '~1')}"
                if found is not None and key in found:
                    self.walk(inner, found[key], True, here)
                else:
                    self.walk(inner, None, False, here)
        elif isinstance(pattern, tuple):
            items = value if present and isinstance(value, list) else []
            for index, inner in enumerate(pattern):
                if index < len(items):
                    self.walk(inner, items[index], True, f"{where}/{index}")
                else:
                    self.walk(inner, None, False, f"{where}/{index}")
        elif isinstance(pattern, str):
            self.text(pattern, value, present, where)
        elif pattern is None:
            if not present or value is not None:
                self.fail(where, "expected null, " + self.found(value, present))
        else:
            expected = as_text(pattern)
            if not present or as_text(value) != expected:
                self.fail(where, f'expected "{expected}", ' + self.found(value, present))

    def text(self, pattern: str, value: object, present: bool, where: str) -> None:
        segments = parse_template(pattern)
        if len(segments) == 1 and isinstance(segments[0], Placeholder):
            if present:
                captured = self.capture_value(value)
                if captured is not None:
                    self.capture(segments[0].name, captured)
            return
        if not any(isinstance(s, Placeholder) for s in segments):
            literal = "".join(s for s in segments if isinstance(s, str))
            if not present or as_text(value) != literal:
                self.fail(where, f'expected "{_excerpt(literal)}", ' + self.found(value, present))
            return
        text = as_text(value) if present else None
        mixed = _mixed(pattern)
        values = mixed.split(text) if text is not None else None
        if values is None:
            self.fail(where, f'expected "{_excerpt(pattern)}", ' + self.found(value, present))
            return
        for placeholder, captured in zip(mixed.placeholders, values, strict=True):
            self.capture(placeholder.name, captured)

    @staticmethod
    def capture_value(value: object) -> Capture | None:
        """A scalar as text, a list of scalars as a tuple; None for null, objects, mixed lists."""
        if isinstance(value, list):
            texts = [as_text(v) for v in value if v is not None]
            if not texts or any(t is None for t in texts):
                return None
            return tuple(t for t in texts if t is not None)
        return as_text(value)

    @staticmethod
    def found(value: object, present: bool) -> str:
        if not present:
            return "but it is missing"
        text = as_text(value)
        if text is not None:
            return f'found "{_excerpt(text)}"'
        if value is None:
            return "found null"
        return f"found {'an object' if isinstance(value, dict) else 'a list'}"


def _first(value: Capture | None) -> str | None:
    if isinstance(value, tuple):
        value = next((v for v in value if v), None)
    return value or None


def _is_json_type(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type.endswith(("/json", "+json"))


def _parse_json(body: bytes) -> tuple[object, bool]:
    try:
        return json.loads(body), True
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, False


def _is_xml_type(content_type: str | None) -> bool:
    return is_xml((content_type or "").partition(";")[0].strip().lower())


def _parse_xml(body: bytes) -> tuple[object, bool]:
    if len(body) > MAX_XML_ANSWER:
        return None, False
    try:
        return parse_xml(body), True
    except XmlError:
        return None, False


def read_answer(body: bytes, content_type: str | None) -> tuple[object, bool]:
    """The answer's tree: its XML tree when its type is XML (at most :data:`MAX_XML_ANSWER`
    bytes), else its JSON; ``(None, False)`` when it is neither."""
    if _is_xml_type(content_type):
        return _parse_xml(body)
    return _parse_json(body)


def map_response(
    response_map: Frozen, body: bytes, content_type: str | None = None
) -> ResponseOutcome:
    """Lay ``response_map`` over a 2xx response ``body`` (docs/format.md, "response_map").

    Never raises.
    """
    if response_map is None:
        return _ACCEPTED_UNKNOWN
    walk = _Walk()
    if isinstance(response_map, str):
        # The whole text body; a JSON string or number (when the type says JSON) by its text.
        text: str | None = body.decode("utf-8-sig", "replace").strip()
        if _is_json_type(content_type):
            parsed, ok = _parse_json(body)
            if ok and not isinstance(parsed, dict | list) and parsed is not None:
                text = as_text(parsed)
        walk.text(response_map, text, True, "")
    elif _is_xml_type(content_type):
        parsed, ok = _parse_xml(body)
        if ok:
            walk.walk(response_map, parsed, True, "")
        elif _has_literal(response_map):
            walk.fail(
                "", f"the response body is not acceptable XML of at most {MAX_XML_ANSWER} bytes"
            )
    else:
        parsed, ok = _parse_json(body)
        if ok:
            walk.walk(response_map, parsed, True, "")
        elif _has_literal(response_map):
            walk.fail("", "the response body is not JSON")
    captures = walk.captures
    return ResponseOutcome(
        accepted=walk.reason is None,
        message_id=_first(captures.get("messageid")),
        error=_error_text(captures.get("error")),
        captures=MappingProxyType(captures),
        reason=walk.reason,
    )


def _error_text(value: Capture | None) -> str | None:
    if isinstance(value, tuple):
        return ", ".join(value) or None
    return value or None


def _has_literal(pattern: Frozen) -> bool:
    if isinstance(pattern, Mapping):
        return any(_has_literal(v) for v in pattern.values())
    if isinstance(pattern, tuple):
        return any(_has_literal(v) for v in pattern)
    if isinstance(pattern, str):
        segments = parse_template(pattern)
        return not (len(segments) == 1 and isinstance(segments[0], Placeholder))
    return True
