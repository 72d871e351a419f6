"""(ext) What the schema cannot say about ``$each`` objects (docs/format.md, "Lists of items:
$each").

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers. Which placeholders an item may
use is the placeholder check's (:func:`._variables.tree_strings` gives an item its list's item
variables).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._each import EACH, ITEM, LISTS
from ._encoding_checks import guess
from ._errors import Problem
from ._placeholders import placeholders_in
from ._pointer import child
from ._template import SWITCH
from ._variables import request_pointers, webhook_models

__all__ = ["EACH_CHECKS"]

_KEYS = frozenset({EACH, ITEM})
_NAMES = tuple(LISTS)


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def _eaches(tree: object, at: str, in_item: bool) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """Each ``$each`` object of a tree: (pointer, object, whether it is inside another's item)."""
    if isinstance(tree, Mapping):
        own = EACH in tree
        if own:
            yield at, tree, in_item
        for key, value in tree.items():
            yield from _eaches(value, child(at, str(key)), in_item or (own and key == ITEM))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _eaches(value, child(at, i), in_item)


def check_each(document: Mapping[str, Any]) -> Iterator[Problem]:
    """An ``$each`` lists a list of its send, has an item that uses it, and stands in a send's
    request_parameters, not in another item."""
    for at, request, scope in request_pointers(document):
        send = scope.name in ("SendMessage", "SendFile")
        for key in ("request_query", "request_headers"):
            for where, _, _ in _eaches(request.get(key), f"{at}/{key}", False):
                yield _error(
                    child(where, EACH),
                    f"$each renders a list in a request's body: only request_parameters have "
                    f"it, not {key}",
                )
        for where, each, nested in _eaches(
            request.get("request_parameters"), f"{at}/request_parameters", False
        ):
            if not send:
                yield _error(
                    child(where, EACH),
                    "$each renders the items a send carries (replies, template parameters, "
                    f"media): only SendMessage and SendFile have them, not {scope.name}",
                )
                continue
            yield from _check_one(where, each, nested, scope.name)
    for i, model in webhook_models(document):
        for where, _, _ in _eaches(
            model.get("request_parameters"), f"/Webhook/{i}/request_parameters", False
        ):
            yield _error(
                child(where, EACH),
                "$each renders a list in a request; a webhook model's pattern cannot hold one "
                "(a model's each reads a list of payloads)",
            )


def _check_one(at: str, each: Mapping[str, Any], nested: bool, send: str) -> Iterator[Problem]:
    if SWITCH in each:
        return  # a $switch with a stray "$each" key: the $switch check says so
    for key in each:
        if key not in _KEYS:
            yield _error(
                child(at, str(key)),
                f'an $each object has only "$each" and "item"; "{key}" is not one (put it in '
                "the item)",
            )
    if nested:
        yield _error(
            child(at, EACH),
            "an $each inside another $each's item: items are not lists, render each list once",
        )
    name = each[EACH]
    listed = LISTS.get(name) if isinstance(name, str) else None
    if listed is None:
        hint = guess(name, _NAMES) if isinstance(name, str) else ""
        yield _error(
            child(at, EACH),
            f"$each names the list it renders: one of {', '.join(_NAMES)}{hint}",
        )
        return
    if listed.send != send:
        yield _error(
            child(at, EACH),
            f'the list "{name}" is a {listed.send}\'s; {send} has no {name}',
        )
    if ITEM not in each:
        yield _error(at, 'an $each needs "item": the template rendered once per item')
        return
    used = {p.name for text in _strings(each[ITEM]) for p in placeholders_in(text)}
    if not used & listed.item_variables:
        own = ", ".join(f"${v}$" for v, _ in listed.binds)
        yield _error(
            child(at, ITEM),
            f"the item uses none of its own variables ({own}): every item would be the same",
        )


def _strings(tree: object) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, Mapping):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _strings(value)


EACH_CHECKS = (check_each,)
