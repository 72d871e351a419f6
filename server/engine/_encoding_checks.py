"""The checks of text encodings (docs/format.md, "Text encodings"): ``$switch`` objects and webhook
models' ``decode`` (placeholder filters: :mod:`._filter_checks`).

Like :mod:`._checks`, each function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from ._codecs import ENCODINGS
from ._each import MEDIA_KINDS
from ._errors import Problem
from ._gsm import GSM7, UCS2
from ._placeholders import placeholders_in, sole_placeholder
from ._pointer import child
from ._template import SWITCH
from ._variables import REQUEST_SCOPES, model_captures, request_pointers, webhook_models

__all__ = ["ENCODING_CHECKS", "guess"]

_ENCODING_VALUES = (GSM7, UCS2)
#: The variables whose every value is known: a $switch on one must say what each sends
#: (docs/format.md, "Text encodings" and "Media kinds").
_CHOICES = {"encoding": _ENCODING_VALUES, "media_kind": MEDIA_KINDS}
_SWITCH_KEYS = frozenset({SWITCH, "cases", "default"})


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def guess(word: str, options: tuple[str, ...]) -> str:
    for option in options:
        if option.lower() == word.lower():
            return f" (did you mean {option}?)"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _switches(tree: object, at: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(tree, Mapping):
        if SWITCH in tree:
            yield at, tree
        for key, value in tree.items():
            yield from _switches(value, child(at, str(key)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _switches(value, child(at, i))


def check_switches(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A ``$switch`` object has a template to choose by and its cases; one on ``$encoding$``
    names only GSM-7 and UCS-2 and covers both unless it has a default, (ext) one on
    ``$media_kind$`` likewise its four kinds."""
    for at, request, scope in request_pointers(document):
        if scope.name not in REQUEST_SCOPES:
            continue
        for where, switch in _switches(
            request.get("request_parameters"), f"{at}/request_parameters"
        ):
            yield from _check_switch(where, switch)
    for i, model in webhook_models(document):
        for where, _ in _switches(
            model.get("request_parameters"), f"/Webhook/{i}/request_parameters"
        ):
            yield _error(
                child(where, SWITCH),
                "a $switch chooses a value in a request; a webhook model's pattern cannot "
                "hold one (write one model per case)",
            )


def _check_switch(at: str, switch: Mapping[str, Any]) -> Iterator[Problem]:
    for key in switch:
        if key not in _SWITCH_KEYS:
            yield _error(
                child(at, str(key)),
                f'a $switch object has only "$switch", "cases" and "default"; "{key}" is not one '
                "(put the value in a case)",
            )
    on = switch[SWITCH]
    if not isinstance(on, str) or not placeholders_in(on):
        yield _error(
            child(at, SWITCH),
            'the value of "$switch" is a template with a placeholder, such as "$encoding$", whose '
            "text names the case",
        )
        return
    cases = switch.get("cases")
    if not isinstance(cases, Mapping) or not cases:
        yield _error(
            child(at, "cases") if "cases" in switch else at,
            'a $switch needs "cases": an object from each value to what is sent for it',
        )
        return
    placeholder = sole_placeholder(on)
    if placeholder is None or placeholder.filters or placeholder.name not in _CHOICES:
        return
    name = placeholder.name
    values = _CHOICES[name]
    for key in cases:
        if key not in values:
            yield _error(
                child(child(at, "cases"), str(key)),
                f'"{key}" is not a value of ${name}${guess(str(key), values)}; '
                f"it is {_one_of(values)}",
            )
    missing = [value for value in values if value not in cases]
    if missing and "default" not in switch:
        yield _error(
            child(at, "cases"),
            f"this ${name}$ switch has no case for {_one_of(missing)} and no default: "
            f"say what is sent for every {'encoding' if name == 'encoding' else 'kind'} "
            "(null: the key is left out)",
        )


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def check_decode(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A model's ``decode`` names captures of that model and known encodings."""
    for i, model in webhook_models(document):
        if not isinstance(model.get("decode"), Mapping):
            continue
        captured = model_captures(i, model)
        for name, encoding in model["decode"].items():
            at = child(f"/Webhook/{i}/decode", str(name))
            if name not in captured:
                yield _error(
                    at,
                    f"the model does not capture ${name}$: decode names captures of its own model",
                )
            if isinstance(encoding, str) and encoding not in ENCODINGS:
                yield _error(
                    at,
                    f"unknown encoding {encoding!r}{guess(encoding, ENCODINGS)}; the encodings "
                    f"are {', '.join(ENCODINGS)}",
                )


ENCODING_CHECKS = (check_switches, check_decode)
