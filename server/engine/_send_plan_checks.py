"""(ext) What the schema cannot say about several requests per send: ``split``, ``for_each``,
``then`` and a follow-up's ``only_if`` (docs/format.md, "Several requests per send").

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers. Where ``$part$``, ``$parts$``,
``$text_parts$`` and ``$media_urls$`` may be used is the placeholder check's (the scopes of
:func:`._variables.send_scope`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import placeholders_in
from ._variables import property_names, request_pointers, template_strings

__all__ = ["check_send_plans"]

_SENDS = ("/API/SendMessage", "/API/SendFile")
_KEYS = ("split", "for_each", "then")


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def check_send_plans(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Each send's ``split``, ``for_each``, ``then`` and ``only_if`` can do what they say."""
    properties = {name for _, name in property_names(document)}
    used = _used_by_request(document)
    for at, request, scope in request_pointers(document):
        if not at.startswith(_SENDS):
            for key in _KEYS:
                if key in request:
                    yield _error(
                        f"{at}/{key}",
                        f"{key} shapes the requests of a send: only SendMessage and SendFile "
                        "(and their then) have it",
                    )
            continue
        follow_up = at.endswith("/then")
        yield from _split_problems(at, request, used.get(at, set()))
        if request.get("for_each") == "media" and at.startswith("/API/SendMessage"):
            yield _error(
                f"{at}/for_each",
                'for_each "media" sends one request per media item, and SendMessage has no '
                'media: use it in SendFile, or "part" with split',
            )
        if follow_up and "then" in request:
            yield _error(
                f"{at}/then", "a then request cannot have a then of its own (one follow-up a send)"
            )
        only_if = request.get("only_if")
        if not isinstance(only_if, Mapping):
            continue
        if not follow_up:
            yield _error(
                f"{at}/only_if",
                "only_if skips a follow-up request: only a then request has it (this request is "
                "always sent)",
            )
            continue
        for test, name in only_if.items():
            if isinstance(name, str) and name not in properties | scope.variables:
                yield _error(
                    f"{at}/only_if/{test}",
                    f"only_if tests ${name}$, which is neither a property of this file nor a "
                    "variable of this request, so the test never changes",
                )


def _split_problems(at: str, request: Mapping[str, Any], used: set[str]) -> Iterator[Problem]:
    split = request.get("split")
    for_each = request.get("for_each")
    if isinstance(split, Mapping):
        given = [key for key in ("max_length", "max_segments") if key in split]
        if len(given) != 1:
            yield _error(
                f"{at}/split",
                "split cuts the text by max_length or by max_segments: give exactly one"
                + (" (not both)" if given else ""),
            )
        if for_each in ("once", "media") and "text_parts" not in used:
            yield _error(
                f"{at}/split",
                f'split cuts the text into parts, but for_each "{for_each}" sends no request per '
                "part and the request never uses $text_parts$: the parts would go nowhere",
            )
    elif split is None and for_each == "part":
        yield _error(
            f"{at}/for_each", 'for_each "part" sends one request per text part: it needs split'
        )


def _used_by_request(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """The placeholder names each send request uses, keyed by its pointer."""
    used: dict[str, set[str]] = {}
    for template in template_strings(document):
        for prefix in _request_prefixes(template.pointer):
            used.setdefault(prefix, set()).update(p.name for p in placeholders_in(template.text))
    return used


def _request_prefixes(pointer: str) -> tuple[str, ...]:
    parts = pointer.split("/")
    if len(parts) > 3 and parts[1] == "API":
        if parts[3] == "then":
            return ("/".join(parts[:4]),)
        return ("/".join(parts[:3]),)
    return ()
