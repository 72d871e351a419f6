"""(ext) What the schema cannot say about a request's ``response_rules`` (docs/format.md,
"response_rules").

Rules are for sends (and (ext) conversation signals) only. A condition must be able to hold: a
capture must be one its ``response_map`` makes, a pointer must be one the answer can have — not
into a text answer, not below a place the map says holds a scalar, not a key where the map has a
list. An ``errors`` entry must be able to match: not one whose conditions contradict each other,
not one that tests a capture (captures exist only on 2xx answers) on non-2xx statuses only, not
one an earlier entry always matches first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import Placeholder, parse_template, placeholders_in
from ._pointer import tokens
from ._variables import RESPONSE_MAP, request_pointers, tree_strings

__all__ = ["check_response_rules"]

#: (ext) A signal's answer is judged as a send's (docs/format.md, "Conversation signals").
_JUDGED = ("/API/SendMessage", "/API/SendFile", "/API/SendTyping", "/API/MarkRead")
# The schema's bounds (docs/format.md, "Limits"): past them only the first are checked, so that a
# hostile file cannot make the pairwise comparison of errors entries quadratic in its size.
_MAX_REQUIRE, _MAX_ERRORS, _MAX_WHEN = 32, 100, 16
_CAPTURES = ("messageid", "status", "error")  # the schema refuses any other


#: (ext) The outcomes whose send may be retried, so that a ``retry_after`` pointer means something.
_WAITS = frozenset({"throttled", "unavailable"})


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def check_response_rules(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Every request's ``response_rules`` can hold and can match."""
    for at, request, _ in request_pointers(document):
        rules = request.get("response_rules")
        if not isinstance(rules, Mapping):
            continue
        at = f"{at}/response_rules"
        if not at.startswith(_JUDGED):
            yield _error(
                at,
                "response_rules judge a send's answer: only SendMessage, SendFile, SendTyping and "
                "MarkRead",
            )
            continue
        yield from _rules_problems(at, rules, request.get("response_map"))


def _rules_problems(at: str, rules: Mapping[str, Any], response_map: object) -> Iterator[Problem]:
    captures = _captures(response_map)
    require = rules.get("require")
    if isinstance(require, list):
        for i, condition in enumerate(require[:_MAX_REQUIRE]):
            if isinstance(condition, Mapping):
                yield from _condition_problems(
                    f"{at}/require/{i}", condition, response_map, captures, on_2xx=True
                )
    errors = rules.get("errors")
    if not isinstance(errors, list):
        return
    seen: list[tuple[int, frozenset[int], frozenset[str]]] = []
    for i, entry in enumerate(errors[:_MAX_ERRORS]):
        if not isinstance(entry, Mapping):
            continue
        here = f"{at}/errors/{i}"
        listed = entry.get("status")
        statuses = [s for s in listed if isinstance(s, int)] if isinstance(listed, list) else []
        on_2xx = not statuses or any(200 <= s < 300 for s in statuses)
        when = entry.get("when", [])
        when = [when] if isinstance(when, Mapping) else when if isinstance(when, list) else []
        conditions = [c for c in when[:_MAX_WHEN] if isinstance(c, Mapping)]
        for j, condition in enumerate(conditions):
            where = f"{here}/when" if isinstance(entry.get("when"), Mapping) else f"{here}/when/{j}"
            if "capture" in condition and not on_2xx:
                yield _error(
                    where,
                    "a capture is made only from a 2xx answer, and this entry is for "
                    "non-2xx statuses only: it can never match",
                )
                continue
            yield from _condition_problems(where, condition, response_map, captures, on_2xx)
        yield from _contradictions(here, conditions)
        if "retry_after" in entry and entry.get("outcome") not in _WAITS:
            yield _error(
                f"{here}/retry_after",
                "retry_after says how long to wait before sending again: only a throttled or "
                "unavailable outcome sends again",
            )
        keys = frozenset(json.dumps(c, sort_keys=True) for c in conditions)
        status_set = frozenset(statuses)
        for earlier, earlier_status, earlier_keys in seen:
            if (not earlier_status or (status_set and status_set <= earlier_status)) and (
                earlier_keys <= keys
            ):
                yield _error(
                    here,
                    f"errors entry {earlier} matches every answer this one does, and the first "
                    "match wins: this entry can never match",
                )
                break
        seen.append((i, status_set, keys))


def _captures(response_map: object) -> frozenset[str]:
    if response_map is None:
        return frozenset()
    return frozenset(
        p.name
        for t in tree_strings(response_map, "", RESPONSE_MAP)
        for p in placeholders_in(t.text)
    )


def _subject(condition: Mapping[str, Any]) -> str:
    if "capture" in condition:
        return f"${condition['capture']}$"
    return str(condition.get("pointer"))


def _contradictions(at: str, conditions: list[Mapping[str, Any]]) -> Iterator[Problem]:
    absent = {_subject(c) for c in conditions if c.get("absent") is True}
    for c in conditions:
        subject = _subject(c)
        if subject in absent and c.get("absent") is not True:
            yield _error(
                f"{at}/when",
                f"{subject} must be absent and also have a value: this entry can never match",
            )
            return


def _condition_problems(
    at: str,
    condition: Mapping[str, Any],
    response_map: object,
    captures: frozenset[str],
    on_2xx: bool,
) -> Iterator[Problem]:
    capture = condition.get("capture")
    if isinstance(capture, str):
        if capture in _CAPTURES and capture not in captures:
            yield _error(
                f"{at}/capture",
                f"the response_map never captures ${capture}$, so this condition is about "
                "nothing: capture it in the response_map, or test its pointer",
            )
        return
    pointer = condition.get("pointer")
    if not isinstance(pointer, str) or not on_2xx or (pointer and not pointer.startswith("/")):
        return  # not a pointer: the schema says so
    if isinstance(response_map, str):
        yield _error(
            f"{at}/pointer",
            "the response_map reads a 2xx answer as text, which has nothing to point into",
        )
        return
    problem = _shape_problem(pointer, response_map)
    if problem:
        yield _error(f"{at}/pointer", problem)


def _shape_problem(pointer: str, response_map: object) -> str | None:
    """Why an accepted answer cannot have ``pointer``, by the shape the response_map gives it."""
    pattern = response_map
    walked = ""
    for token in tokens(pointer):
        if pattern is None:
            return None  # the map says nothing here
        if isinstance(pattern, Mapping):
            pattern = pattern.get(token)
        elif isinstance(pattern, list):
            if not token.isdigit():
                return (
                    f'the response_map has a list at "{walked or "/"}": "{token}" is not an index'
                )
            pattern = pattern[0] if pattern else None
        elif isinstance(pattern, str) and _is_capture(pattern):
            return None  # a capture takes a scalar or a list of scalars: an index may follow
        else:
            return (
                f'the response_map requires a scalar at "{walked or "/"}", '
                "so nothing can be below it"
            )
        walked += "/" + token.replace("~", "~0").replace("/", "~1")
    return None


def _is_capture(pattern: str) -> bool:
    segments = parse_template(pattern)
    return len(segments) == 1 and isinstance(segments[0], Placeholder)
