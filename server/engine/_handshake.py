"""(ext) Verification handshakes (docs/format.md, "Verification handshakes").

A provider proves that a webhook URL is the one it was given before it sends anything to it:
Meta's ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`` wants the challenge back
when the token is the one the installation was given, Slack's ``url_verification`` its
``challenge``, VK's ``confirmation`` a string the installation holds, WeChat's GET its
``echostr`` once a SHA-1 over the sorted token, timestamp and nonce holds. A definition's
``Handshake`` entries say how to recognise such a request (a pattern, as a webhook model's), what
must hold of its captures (``require``) and what to answer; a handshake is never an event.

Pure: :func:`match_handshake` finds the first entry, in file order, that a request matches;
:func:`answer_handshake` checks its ``require`` against the installation's property values and
renders the answer, or raises :class:`HandshakeRefused` with the reason (never repeating a value).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from ._answer import ANSWER_BODY_MAX_BYTES
from ._errors import EngineError
from ._model import Definition, Handshake, HandshakeDigest, WebhookAnswer
from ._parse import WebhookRequest, parse_webhook
from ._patterns import Captures, Pattern, compile_headers, compile_pattern, header_fields
from ._template import compile_text, text_names

_Escape = Callable[[str], str]

__all__ = [
    "HandshakeMatch",
    "HandshakeRefused",
    "answer_handshake",
    "handshake_names",
    "match_handshake",
    "needs_properties",
]


class HandshakeRefused(EngineError):
    """A request that matched a handshake but may not be answered: its ``reason`` is kept, and
    the request answered 403 (docs/format.md, "Verification handshakes")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeMatch:
    """The first handshake a request matched, and what it captured (each capture's first
    value)."""

    handshake: Handshake
    captures: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Compiled:
    handshake: Handshake
    pattern: Pattern
    headers: Pattern | None


class _ByIdentity:
    """A cache key that is one particular Definition object (as engine/_match.py keys its
    compiled models): a definition is immutable, so its handshakes compile once."""

    __slots__ = ("definition",)

    def __init__(self, definition: Definition) -> None:
        self.definition = definition

    def __hash__(self) -> int:
        return id(self.definition)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.definition is self.definition


@functools.lru_cache(maxsize=256)
def _compile(key: _ByIdentity) -> tuple[_Compiled, ...]:
    return tuple(
        _Compiled(
            handshake=h,
            pattern=compile_pattern(h.parameters, ""),
            headers=compile_headers(h.headers, ""),
        )
        for h in key.definition.handshakes
    )


def match_handshake(definition: Definition, request: WebhookRequest) -> HandshakeMatch | None:
    """The first of ``definition``'s handshakes, in file order, that ``request`` matches; None
    when it matches none (or the definition has none). Raises WebhookParseError when the body
    cannot be parsed."""
    method = request.method.upper()
    if all(h.method != method for h in definition.handshakes):
        return None  # not parsed at all: a POST message to a definition with a GET handshake
    body = parse_webhook(request)
    headers = header_fields(request.headers)
    for compiled in _compile(_ByIdentity(definition)):
        if compiled.handshake.method != method:
            continue
        captures: Captures = {}
        if not compiled.pattern.match(body, captures):
            continue
        if compiled.headers is not None and not compiled.headers.match(headers, captures):
            continue
        first = {
            name: (value if isinstance(value, str) else (value[0] if value else ""))
            for name, value in captures.items()
        }
        return HandshakeMatch(handshake=compiled.handshake, captures=first)
    return None


def answer_handshake(match: HandshakeMatch, properties: Mapping[str, str]) -> WebhookAnswer:
    """The answer to a matched handshake, once every ``require`` holds. Property values win over
    captures of the same name (``msgbridge check`` refuses such a capture): a request can never
    supply the value it is checked against."""
    handshake = match.handshake
    values: dict[str, str | tuple[str, ...] | None] = {**match.captures, **properties}
    for name, wanted in handshake.require.items():
        got = match.captures.get(name)
        if not got:
            raise HandshakeRefused(f"the handshake's ${name}$ is empty")
        expected = _expected(wanted, values)
        if not expected:
            raise HandshakeRefused(
                f"what the handshake's ${name}$ is checked against renders empty "
                "(is the installation's property set?)"
            )
        if not hmac.compare_digest(got.encode("utf-8", "replace"), expected.encode("utf-8")):
            raise HandshakeRefused(f"the handshake's ${name}$ is not the expected value")
    escape_value = _escaper(handshake.answer.content_type)
    escaped = {k: escape_value(v) for k, v in values.items() if isinstance(v, str)}
    body = compile_text(handshake.answer.body)(escaped) or ""
    if len(body.encode("utf-8", "replace")) > ANSWER_BODY_MAX_BYTES:
        raise HandshakeRefused(
            f"the handshake's answer would be over {ANSWER_BODY_MAX_BYTES} bytes"
        )
    return WebhookAnswer(
        status=handshake.answer.status, content_type=handshake.answer.content_type, body=body
    )


def handshake_names(handshake: Handshake) -> frozenset[str]:
    """Every placeholder name ``require`` and the answer's body read."""
    names: set[str] = set(text_names(handshake.answer.body))
    for wanted in handshake.require.values():
        for text in (wanted,) if isinstance(wanted, str) else wanted.values:
            names |= text_names(text)
    return frozenset(names)


def needs_properties(handshake: Handshake, properties: frozenset[str]) -> bool:
    """Whether answering ``handshake`` reads an installation's property (so it can be answered
    only through an installation's URL)."""
    return bool(handshake_names(handshake) & properties)


def _expected(
    wanted: str | HandshakeDigest, values: Mapping[str, str | tuple[str, ...] | None]
) -> str:
    if isinstance(wanted, str):
        return compile_text(wanted)(values) or ""
    parts = [compile_text(text)(values) or "" for text in wanted.values]
    if any(not part for part in parts):
        return ""
    if wanted.sorted:
        parts.sort()
    return hashlib.new(wanted.algorithm, "".join(parts).encode("utf-8")).hexdigest()


def _escaper(content_type: str) -> _Escape:
    media = content_type.split(";", 1)[0].strip().lower()
    if media.endswith(("/json", "+json")):
        return lambda value: json.dumps(value, ensure_ascii=False)[1:-1]
    if media.endswith(("/xml", "+xml")) or media == "text/html":
        return lambda value: escape(value, {'"': "&quot;", "'": "&apos;"})
    return lambda value: value
