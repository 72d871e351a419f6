"""(ext) A webhook model's ``each`` pointer over nested lists, and the elements enclosing each
payload it finds (docs/format.md, "Nested lists").

An ``each`` pointer is a JSON Pointer in which a ``*`` token stands for every element of the list
at that place: ``/entry/*/changes/*/value/messages`` names one ``messages`` list per change of
each entry, and every element of every such list is a payload. :func:`find_lists` walks a parsed
body once along the pointer, in document order, and keeps, for each list it finds, the nodes at
the depths the models' ``enclosing`` patterns read (an ``enclosing`` key is a shorter prefix of
the ``each`` pointer, ``""`` the whole body).

The walk costs the size of what it visits: each token reads one key or one index, and a ``*``
visits each element once. The pointers are bounded (:data:`MAX_POINTER`, :data:`MAX_WILDCARDS`)
so that the pointer text of every payload, which names its concrete place, stays short.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ._pointer import escape, tokens

__all__ = [
    "MAX_ENCLOSING",
    "MAX_POINTER",
    "MAX_WILDCARDS",
    "MISSING",
    "WILDCARD",
    "FoundList",
    "find_lists",
    "pointer_steps",
    "resolve",
]

#: The token of an ``each`` (or ``enclosing``) pointer that stands for every element of a list.
WILDCARD: Final = "*"
#: At most this many ``*`` tokens in one ``each`` pointer.
MAX_WILDCARDS: Final = 4
#: At most this many characters in an ``each`` or ``enclosing`` pointer.
MAX_POINTER: Final = 512
#: At most this many ``enclosing`` patterns in one model.
MAX_ENCLOSING: Final = 8

MISSING: Final = object()

#: A list found at an ``each`` pointer: its concrete pointer
#: (``/entry/0/changes/1/value/messages``), the list, and the nodes at the depths asked for,
#: shallowest first.
FoundList = tuple[str, list[object], tuple[object, ...]]


def pointer_steps(text: str) -> tuple[str, ...] | None:
    """The unescaped tokens of a JSON Pointer (RFC 6901); None when it is not one."""
    if text and not text.startswith("/"):
        return None
    return tokens(text)


def resolve(document: object, steps: Iterable[str] | None) -> object:
    """The value at a JSON Pointer given by its tokens (``*`` is a key here), or ``MISSING``."""
    if steps is None:
        return MISSING
    node = document
    for step in steps:
        node = _step(node, step)
        if node is MISSING:
            return MISSING
    return node


def _step(node: object, step: str) -> object:
    if isinstance(node, dict):
        return node.get(step, MISSING)
    if isinstance(node, list):
        if not (step.isascii() and step.isdigit()) or len(step) > 9:
            return MISSING
        if (step.startswith("0") and step != "0") or int(step) >= len(node):
            return MISSING
        return node[int(step)]
    return MISSING


def find_lists(body: object, steps: tuple[str, ...], depths: frozenset[int]) -> list[FoundList]:
    """Every list at the pointer ``steps`` (a ``*`` taking every element of a list), in document
    order, each with the nodes at ``depths`` (0 is the body, n the node after n tokens)."""
    frontier: list[tuple[str, object, tuple[object, ...]]] = [
        ("", body, (body,) if 0 in depths else ())
    ]
    depth = 0
    for run in _runs(steps):
        following: list[tuple[str, object, tuple[object, ...]]] = []
        if run == (WILDCARD,):
            depth += 1
            keep = depth in depths
            for at, node, kept in frontier:
                if isinstance(node, list):
                    following.extend(
                        (f"{at}/{i}", element, (*kept, element) if keep else kept)
                        for i, element in enumerate(node)
                    )
        else:
            # A run of plain tokens is walked token by token, but its text is appended once.
            text = "".join(f"/{escape(step)}" for step in run)
            start = depth
            for at, node, kept in frontier:
                found = node
                reached: list[object] = []
                for offset, step in enumerate(run, start=1):
                    found = _step(found, step)
                    if found is MISSING:
                        break
                    if start + offset in depths:
                        reached.append(found)
                if found is not MISSING:
                    following.append((f"{at}{text}", found, (*kept, *reached)))
            depth += len(run)
        frontier = following
    return [(at, node, kept) for at, node, kept in frontier if isinstance(node, list)]


def _runs(steps: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The pointer's tokens cut into runs of plain tokens and single ``*`` tokens."""
    runs: list[tuple[str, ...]] = []
    plain: list[str] = []
    for step in steps:
        if step == WILDCARD:
            if plain:
                runs.append(tuple(plain))
                plain = []
            runs.append((WILDCARD,))
        else:
            plain.append(step)
    if plain:
        runs.append(tuple(plain))
    return runs
