"""Bounds on what one definition may hold (docs/format.md, "Limits").

Operators load definitions written by partners, and the service registers, renders and matches
them on everyone's behalf: the size of a definition must not be able to make any of that cost
more than linear time in its input, nor amplify one value into an enormous request. The reader
(:mod:`._document`) already bounds the file's size and nesting; these bounds cover what a
megabyte can still multiply:

- webhook models: every payload of a webhook is tried against each, and one that no model
  matches is explained against each;
- pattern values over all models: the matcher's work per payload is their number;
- ``*`` keys: each one scans every key of the payload object it is laid over;
- placeholders: a rendered request holds one copy of a value per placeholder;
- properties: the checker suggests a property for each unknown placeholder.

Each bound is far above what a real definition needs (the largest in ``integrations/`` has 13
models, 112 pattern values, one ``*`` key, 62 placeholders and 6 properties). The problems are
reported before the semantic checks run, and instead of them: on a document this large those
checks would spend their time on a definition that cannot load anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeAlias

from ._errors import Problem
from ._patterns import optional_key
from ._placeholders import placeholders_in
from ._pointer import child, pointer
from ._variables import template_strings

__all__ = [
    "MAX_MODELS",
    "MAX_PATTERN_VALUES",
    "MAX_PLACEHOLDERS",
    "MAX_PROPERTIES",
    "MAX_STAR_KEYS",
    "limit_problems",
]

MAX_MODELS: Final = 100
MAX_PATTERN_VALUES: Final = 1_000
MAX_STAR_KEYS: Final = 32
MAX_PLACEHOLDERS: Final = 1_000
MAX_PROPERTIES: Final = 100


def limit_problems(document: Mapping[str, Any]) -> list[Problem]:
    """A problem for each bound ``document`` passes, at the first place past it."""
    return [
        *_too_many_items(document),
        *_pattern_problems(document),
        *_placeholder_problems(document),
    ]


def _too_many_items(document: Mapping[str, Any]) -> Iterator[Problem]:
    for key, bound, what in (
        ("Webhook", MAX_MODELS, "webhook models"),
        ("properties", MAX_PROPERTIES, "properties"),
    ):
        items = document.get(key)
        if isinstance(items, list) and len(items) > bound:
            yield Problem(
                pointer=child(f"/{key}", bound),
                message=f"a definition may have at most {bound} {what}; this one has {len(items)}",
            )


def _pattern_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    models = document.get("Webhook")
    if not isinstance(models, list):
        return
    counter = _Counter()
    for i, model in enumerate(models[:MAX_MODELS]):
        if not isinstance(model, Mapping):
            continue
        for key in ("request_parameters", "request_headers", "absent"):
            counter.walk(model.get(key), (((None, "Webhook"), i), key))
        enclosing = model.get("enclosing")
        if isinstance(enclosing, Mapping):
            # (ext) "Nested lists": its keys are pointers, where a "*" is no `*` key
            for at, pattern in enclosing.items():
                place: _Place = ((((None, "Webhook"), i), "enclosing"), at)
                counter.walk(pattern, place, key_counts=False)
    if counter.values_past is not None:
        yield Problem(
            pointer=counter.values_past,
            message=f"the webhook models' patterns may hold at most {MAX_PATTERN_VALUES} values "
            f"in all (objects, lists, strings, numbers, …); they hold {counter.values}",
        )
    if counter.stars_past is not None:
        yield Problem(
            pointer=counter.stars_past,
            message=f"the webhook models' patterns may hold at most {MAX_STAR_KEYS} keys ending "
            f'in "*" in all; they hold {counter.stars}',
        )


# A place in a pattern: its parent's place and its key or index. The pointer text is built only
# for the place where a bound is passed: building one per value would cost the length of every
# ancestor's key again for each value below it.
_Place: TypeAlias = "tuple[_Place, str | int] | None"


def _pointer(place: _Place) -> str:
    tokens: list[str | int] = []
    while place is not None:
        parent, token = place
        tokens.append(token)
        place = parent
    return pointer(reversed(tokens))


class _Counter:
    """Counts pattern values and ``*`` keys, remembering where each bound was first passed."""

    def __init__(self) -> None:
        self.values = 0
        self.stars = 0
        self.values_past: str | None = None
        self.stars_past: str | None = None

    def walk(self, tree: object, place: _Place, *, key_counts: bool = True) -> None:
        """Count ``tree``'s values; its own key at ``place`` is a ``*`` key only when
        ``key_counts`` (an ``enclosing`` key is a pointer, where ``*`` means every element)."""
        stack: list[tuple[object, _Place]] = [(tree, place)] if tree is not None else []
        while stack:  # iterative and in document order
            value, here = stack.pop()
            self.values += 1
            if self.values == MAX_PATTERN_VALUES + 1:
                self.values_past = _pointer(here)
            counts = key_counts or here is not place
            key = here[1] if counts and here is not None else None
            if isinstance(key, str) and optional_key(key)[0].endswith("*"):  # (ext) "Prefix*?"
                self.stars += 1  # a key of an object (list places are indices)
                if self.stars == MAX_STAR_KEYS + 1:
                    self.stars_past = _pointer(here)
            if isinstance(value, Mapping):
                stack.extend((item, (here, key)) for key, item in reversed(list(value.items())))
            elif isinstance(value, list):
                stack.extend((item, (here, i)) for i, item in reversed(list(enumerate(value))))


def _placeholder_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    count = 0
    for template in template_strings(document):
        count += len(placeholders_in(template.text))
        if count > MAX_PLACEHOLDERS:
            yield Problem(
                pointer=template.pointer,
                message=f"a definition may hold at most {MAX_PLACEHOLDERS} placeholders in all; "
                "its templates and patterns pass that bound here",
            )
            return
