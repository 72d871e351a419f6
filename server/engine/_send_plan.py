"""(ext) Several requests per send: which requests one SendMessage or SendFile makes, and what
each carries (docs/format.md, "Several requests per send").

:func:`plan_send` is pure: from a send's template and variables it makes the ordered steps —
each a template (whose response_map and response_rules judge its answer) and the variables it is
rendered with. A template without ``split``, ``for_each`` and ``then`` is one step holding the
very objects it was given, so the common send pays one tuple and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ._errors import EngineError
from ._find import only_if_holds
from ._gsm import prefer_space, segment_parts, text_encoding
from ._model import RequestTemplate, Split
from ._template import Value, value_text

__all__ = [
    "MAX_REQUESTS_PER_SEND",
    "MEDIA_URLS",
    "PART",
    "PARTS",
    "TEXT_PARTS",
    "RequestStep",
    "TooManyRequests",
    "plan_send",
    "split_text",
    "text_variable",
]

#: docs/format.md, "Limits": the requests one send may make, its follow-up's included.
MAX_REQUESTS_PER_SEND: Final = 16

#: The variables of several requests per send (docs/format.md, "Several requests per send").
PART: Final = "part"
PARTS: Final = "parts"
TEXT_PARTS: Final = "text_parts"
MEDIA_URLS: Final = "media_urls"
#: (ext) each file's kind, and the one of the request's file (docs/format.md, "Media kinds")
MEDIA_KINDS: Final = "media_kinds"
MEDIA_KIND: Final = "media_kind"
_ENCODING: Final = "encoding"


class TooManyRequests(EngineError):
    """A send would take more than :data:`MAX_REQUESTS_PER_SEND` requests."""

    def __init__(self, needed: int, pointer: str) -> None:
        self.needed = needed
        self.pointer = pointer
        shown = f"more than {MAX_REQUESTS_PER_SEND}" if needed > MAX_REQUESTS_PER_SEND else needed
        super().__init__(
            f"this message would take {shown} requests to the provider (at most "
            f"{MAX_REQUESTS_PER_SEND} per send): send a shorter text or fewer media"
        )


@dataclass(frozen=True, slots=True)
class RequestStep:
    """One request of a send: the template to render and judge it by, and its variables."""

    template: RequestTemplate
    variables: Mapping[str, Value]


def text_variable(template: RequestTemplate) -> str:
    """The variable holding the message's text: SendFile's caption, SendMessage's content."""
    return "text" if template.pointer.startswith("/API/SendFile") else "content"


def split_text(text: str, split: Split, most: int = MAX_REQUESTS_PER_SEND) -> tuple[str, ...]:
    """``text`` cut into parts by ``split``; joined, the parts are ``text`` again. An empty
    text is no part; past ``most`` parts the cutting stops (the send is refused anyway)."""
    if split.max_segments is not None:
        ends = segment_parts(text, split.max_segments, most)
    else:
        ends = _length_parts(text, split.max_length or 1, most)
    starts = [0, *ends]
    return tuple(text[start:end] for start, end in zip(starts, ends, strict=False))


def _length_parts(text: str, max_length: int, most: int) -> list[int]:
    """At most ``max_length`` characters (code points) a part, cut as segment_parts cuts."""
    ends: list[int] = []
    start = 0
    while start < len(text) and len(ends) <= most:
        ends.append(prefer_space(text, start, min(start + max_length, len(text))))
        start = ends[-1]
    return ends


def plan_send(template: RequestTemplate, variables: Mapping[str, Value]) -> tuple[RequestStep, ...]:
    """The requests one send makes, in order (docs/format.md, "Several requests per send").

    Raises :class:`TooManyRequests` before anything is built past the bound.
    """
    if template.split is None and template.for_each is None and template.then is None:
        return (RequestStep(template, variables),)
    first = _Expansion(template, variables)
    follow = template.then
    second = (
        _Expansion(follow, variables)
        if follow is not None and only_if_holds(follow, variables)
        else None
    )
    needed = first.count + (second.count if second else 0)
    if needed > MAX_REQUESTS_PER_SEND:
        raise TooManyRequests(needed, template.pointer)
    return (*first.steps(), *(second.steps() if second else ()))


class _Expansion:
    """The requests one template makes: one per part, per media item, or once."""

    __slots__ = ("_base", "_items", "_mode", "_name", "_template", "count")

    def __init__(self, template: RequestTemplate, variables: Mapping[str, Value]) -> None:
        self._template = template
        self._name = text_variable(template)
        base: Mapping[str, Value] = variables
        parts: tuple[str, ...] = ()
        if template.split is not None:
            text = value_text(variables.get(self._name))
            parts = split_text(text, template.split)
            # The whole text's encoding, for every part ("Text encodings").
            base = {**variables, TEXT_PARTS: parts, _ENCODING: text_encoding(text)}
        self._base = base
        mode = template.for_each or ("part" if template.split is not None else "once")
        self._mode = mode
        if mode == "media":
            media = variables.get(MEDIA_URLS)
            if not isinstance(media, tuple):
                content = variables.get("content")
                media = (content,) if isinstance(content, str) else ()
            self._items: tuple[str, ...] = media or ("",)
        elif mode == "part":
            self._items = parts or ("",)  # no text: one request, the text left as it was
        else:
            self._items = ("",)
        self.count = len(self._items)

    def steps(self) -> tuple[RequestStep, ...]:
        if self._mode == "once":
            return (RequestStep(self._template, self._base),)
        count = str(self.count)
        media = self._mode == "media"
        key = "content" if media else self._name
        kinds = self._base.get(MEDIA_KINDS) if media else None
        steps = []
        for number, item in enumerate(self._items, 1):
            values = {**self._base, PART: str(number), PARTS: count}
            if item:
                values[key] = item
            if isinstance(kinds, tuple) and number <= len(kinds):
                values[MEDIA_KIND] = kinds[number - 1]  # this file's kind
            steps.append(RequestStep(self._template, values))
        return tuple(steps)
