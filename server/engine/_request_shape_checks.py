"""(ext) What the schema cannot say about where a request's values go (docs/format.md,
"Requests"): ``request_query``, ``request_parameters_in`` and ``request_omit_empty``.

Like :mod:`._checks`, each function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._body import parameters_in_query
from ._errors import Problem
from ._template import SWITCH
from ._variables import request_pointers

__all__ = ["check_request_shapes"]


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def _has_object(tree: object, top: bool = False) -> bool:
    """Whether ``tree`` holds an object below its top (the top object is never left out)."""
    if isinstance(tree, Mapping):
        return not top or any(_has_object(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_has_object(v) for v in tree)
    return False


def check_request_shapes(document: Mapping[str, Any]) -> Iterator[Problem]:
    """``request_parameters_in`` places parameters that exist; ``request_query`` is named fields
    whose names are not also sent as query parameters by ``request_parameters``."""
    for at, request, _ in request_pointers(document):
        declared = request.get("request_parameters_in")
        parameters = request.get("request_parameters")
        if declared in ("query", "body") and parameters is None:
            yield _error(
                f"{at}/request_parameters_in",
                f'request_parameters_in is "{declared}", but the request has no '
                "request_parameters to put there",
            )
        query = request.get("request_query")
        if request.get("request_omit_empty") is True and not (
            _has_object(parameters, top=True) or _has_object(query, top=True)
        ):
            yield _error(
                f"{at}/request_omit_empty",
                "request_omit_empty leaves out objects nested in request_parameters or "
                "request_query, but this request has none: it would change nothing",
            )
        if not isinstance(query, Mapping):
            continue
        if SWITCH in query:
            yield _error(
                f"{at}/request_query",
                "request_query is named query parameters, so it cannot be a $switch as a whole "
                "(put the $switch under a parameter's name)",
            )
            continue
        method = request.get("request_method")
        if isinstance(parameters, Mapping) and parameters_in_query(method, declared):
            for name in query:
                if name in parameters and name != SWITCH:
                    yield _error(
                        f"{at}/request_query/{name.replace('~', '~0').replace('/', '~1')}",
                        f'"{name}" is also in request_parameters, which this request sends in '
                        "the query too: the parameter would be sent twice",
                    )
