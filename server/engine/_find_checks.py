"""(ext) ``msgbridge check`` rules for ``find`` and ``only_if`` (docs/format.md, "Look up before
create"): what the schema cannot say about them, each reported at its JSON Pointer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._pointer import child
from ._variables import (
    ALL_VARIABLES,
    find_rules,
    kept_names,
    map_captures,
    only_if_name,
    property_names,
    request_pointers,
)

__all__ = ["check_find"]


def check_find(document: Mapping[str, Any]) -> Iterator[Problem]:
    """``find`` and ``only_if`` only where a list of requests runs, and naming what they may."""
    properties = {name for _, name in property_names(document)}
    kept = kept_names(document)  # a test of what the last run kept is always meaningful
    for at, request, scope in request_pointers(document):
        if not scope.chained:
            # a send's follow-up may have only_if: the send plan's check judges it; (ext) a
            # signal is one request, never skipped ("Conversation signals")
            sends = at.startswith(("/API/SendMessage", "/API/SendFile"))
            for key in ("find",) if sends else ("find", "only_if"):
                if key in request:
                    yield Problem(
                        pointer=f"{at}/{key}",
                        message=f"{key} is for Subscribe and Unsubscribe requests only",
                    )
            continue
        yield from _search_problems(at, request, properties)
        for test in ("present", "absent"):
            name = only_if_name(request, test)
            if name is None or name in properties or name in scope.variables or name in kept:
                continue
            yield Problem(
                pointer=f"{at}/only_if/{test}",
                message=f"only_if tests ${name}$, which is neither a property, nor a value of "
                f"{scope.name} here (captured by a request before this one), nor one Subscribe "
                "keeps",
            )


def _search_problems(
    at: str, request: Mapping[str, Any], properties: set[str]
) -> Iterator[Problem]:
    by_map = map_captures(request) if "find" in request else frozenset()
    if "find" in request and isinstance(request.get("response_map"), str):
        yield Problem(
            pointer=f"{at}/find",
            message="the response_map reads this answer as text; find searches a JSON answer",
        )
    seen: set[str] = set()
    for rule_at, rule in find_rules(request, at):
        capture = rule.get("capture")
        if not isinstance(capture, Mapping):
            continue
        for name in capture:
            where = child(f"{rule_at}/capture", name)
            if name in properties:
                yield Problem(
                    pointer=where,
                    message=f'${name}$ would hide the property "{name}"; a capture names a new '
                    "variable, so give it a name of its own",
                )
            elif name in ALL_VARIABLES:
                yield Problem(
                    pointer=where,
                    message=f"${name}$ would hide the gateway's variable of that name; a capture "
                    "names a new variable, so give it a name of its own",
                )
            elif name in by_map or name in seen:
                yield Problem(
                    pointer=where,
                    message=f"${name}$ is captured twice by this request; one place says it",
                )
            seen.add(name)
