"""(ext) What the schema cannot say about a webhook model's ``each`` pointer over nested lists and
its ``enclosing`` patterns (docs/format.md, "Nested lists").

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._nested_each import MAX_WILDCARDS, WILDCARD, pointer_steps
from ._pointer import child, pointer
from ._variables import webhook_models

__all__ = ["check_nested_each"]


def check_nested_each(document: Mapping[str, Any]) -> Iterator[Problem]:
    """An ``each`` pointer has at most MAX_WILDCARDS ``*`` tokens and names a list, not every
    element of one; each ``enclosing`` key is an element the pointer walks through."""
    for i, model in webhook_models(document):
        each = model.get("each")
        steps = pointer_steps(each) if isinstance(each, str) else None
        if steps is not None:
            yield from _each_problems(f"/Webhook/{i}/each", steps)
        enclosing = model.get("enclosing")
        if not isinstance(enclosing, Mapping) or not enclosing:
            continue
        at = f"/Webhook/{i}/enclosing"
        if not isinstance(each, str):
            yield Problem(
                pointer=at,
                message="enclosing reads the elements around the payloads of an each pointer; "
                "this model has no each",
            )
            continue
        if steps is None:
            continue  # the schema has said each is not a pointer
        for key in enclosing:
            problem = _enclosing_problem(str(key), steps, each)
            if problem is not None:
                yield Problem(pointer=child(at, str(key)), message=problem)


def _each_problems(at: str, steps: tuple[str, ...]) -> Iterator[Problem]:
    wildcards = steps.count(WILDCARD)
    if wildcards > MAX_WILDCARDS:
        yield Problem(
            pointer=at,
            message=f"each may walk at most {MAX_WILDCARDS} nested lists (* tokens); this one "
            f"has {wildcards}",
        )
    if steps and steps[-1] == WILDCARD:
        yield Problem(
            pointer=at,
            message="each names the list whose elements are the payloads; a last /* would "
            f'take the elements of its elements: write "{pointer(steps[:-1])}"',
        )


def _enclosing_problem(key: str, steps: tuple[str, ...], each: str) -> str | None:
    """Why ``key`` is not an element enclosing the payloads of ``each``, or None."""
    prefix = pointer_steps(key)
    if prefix is None:
        return None  # the schema has said so
    if len(prefix) >= len(steps) or steps[: len(prefix)] != prefix:
        return (
            f'"{key}" is not an element around the payloads of each "{each}": an enclosing '
            f'pointer is a shorter prefix of each ("" is the whole body)'
        )
    if steps[len(prefix)] == WILDCARD:
        return (
            f'"{key}" is the list each walks with *, not one element of it: write '
            f'"{pointer(prefix)}/*" for the element around the payload'
        )
    return None
