"""(ext) What the schema cannot say about a request's ``build`` (docs/format.md, "Value
filters"): a built name is new, and the request reads it.

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import placeholders_in
from ._pointer import child
from ._variables import (
    ALL_VARIABLES,
    TOKEN_REQUEST,
    Scope,
    built_request_names,
    property_names,
    request_pointers,
    token_request,
    tree_strings,
)

__all__ = ["check_request_builds"]

#: What a request's own templates are; its ``build`` reads, its ``then`` is a request of its own.
_NOT_ITS_TEMPLATES = frozenset({"build", "then", "response_map"})


def _requests(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Scope]]:
    yield from request_pointers(document)
    request = token_request(document)
    if request is not None:
        yield "/auth/request", request, TOKEN_REQUEST


def check_request_builds(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A built name is neither a property nor a variable, and the request's templates read it."""
    properties = {name for _, name in property_names(document)}
    for at, request, scope in _requests(document):
        built = built_request_names(request)
        if not built:
            continue
        read = {
            p.name
            for key, tree in request.items()
            if key not in _NOT_ITS_TEMPLATES
            for string in tree_strings(tree, child(at, key), scope)
            for p in placeholders_in(string.text)
        }
        for name in sorted(built):
            kind = "a property" if name in properties else "a variable"
            if name in properties or name in ALL_VARIABLES:
                message = f'"{name}" is {kind}: a built value needs a name of its own'
            elif name not in read:
                message = f'"{name}" is built but this request never reads ${name}$'
            else:
                continue
            yield Problem(pointer=child(f"{at}/build", name), message=message)
