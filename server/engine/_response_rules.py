"""(ext) Judging a send's answer by its ``response_rules`` (docs/format.md, "response_rules").

A condition looks at one place of the answer — a JSON Pointer into its JSON (or XML tree), or a
capture of the ``response_map`` — and tests it with one keyword; :data:`_TESTS` is the table of
those keywords, each a small pure function. ``errors`` entries are tried in order on any answer,
2xx or not (first match wins); ``require`` conditions must all hold on a 2xx answer. A pointer
costs one step per token; a test one set lookup: judging is linear in the rules, whatever the
answer. The answer is read by the same bounded readers as the ``response_map`` (an XML answer of
at most :data:`~._response.MAX_XML_ANSWER` bytes). Nothing here raises, whatever the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._model import ResponseCondition, ResponseOutcomeName, ResponseRules
from ._patterns import as_text
from ._pointer import tokens
from ._response import Capture, read_answer

__all__ = ["ErrorMatch", "Judgement", "judge_response"]

_MISSING = object()
_EXCERPT = 80


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorMatch:
    """The ``errors`` entry an answer matched: its ``outcome``, its index in the list, and the
    provider's ``code`` — the text found at the entry's first condition (None when it has none,
    or nothing is there) — and (ext) the text at its ``retry_after`` pointer."""

    outcome: ResponseOutcomeName
    index: int
    code: str | None
    # the text at the entry's ``retry_after`` pointer, when it has one and something is there
    retry_after: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Judgement:
    """What the rules make of an answer: the ``error`` entry it matched, else the first
    ``require`` condition that does not hold on a 2xx answer (``unmet``: where, and what was
    found there); both None when the rules have nothing against it."""

    error: ErrorMatch | None = None
    unmet: str | None = None


_NOTHING = Judgement()


def _at(document: object, pointer: str) -> object:
    value = document
    for token in tokens(pointer):
        if isinstance(value, dict):
            value = value.get(token, _MISSING)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _subject(
    condition: ResponseCondition, document: object, captures: Mapping[str, Capture]
) -> object:
    if condition.capture is not None:
        value = captures.get(condition.capture, _MISSING)
        if isinstance(value, tuple):  # a list capture is judged by its first item
            return value[0] if value else _MISSING
        return value
    return _at(document, condition.pointer or "")


def _texts(condition: ResponseCondition) -> frozenset[str]:
    return frozenset(t for t in (as_text(v) for v in condition.values) if t is not None)


def _one_of(condition: ResponseCondition, value: object) -> bool:
    return value is not _MISSING and as_text(value) in _texts(condition)


def _not(condition: ResponseCondition, value: object) -> bool:
    return value is not _MISSING and value is not None and as_text(value) not in _texts(condition)


def _present(condition: ResponseCondition, value: object) -> bool:
    return value is not _MISSING and value is not None


def _absent(condition: ResponseCondition, value: object) -> bool:
    return value is _MISSING or value is None


#: One small function per test keyword (docs/format.md, "response_rules").
_TESTS: dict[str, Callable[[ResponseCondition, object], bool]] = {
    "one_of": _one_of,
    "not": _not,
    "present": _present,
    "absent": _absent,
}


def _holds(condition: ResponseCondition, document: object, captures: Mapping[str, Capture]) -> bool:
    return _TESTS[condition.test](condition, _subject(condition, document, captures))


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _found(value: object) -> str:
    if value is _MISSING:
        return "it is missing"
    text = as_text(value)
    if text is not None:
        return f'found "{_excerpt(text)}"'
    if value is None:
        return "found null"
    return f"found {'an object' if isinstance(value, dict) else 'a list'}"


def _describe(condition: ResponseCondition, value: object) -> str:
    where = f"${condition.capture}$" if condition.capture else (condition.pointer or "/")
    listed = ", ".join(f'"{as_text(v)}"' for v in condition.values)
    wanted = {
        "one_of": f"expected one of {listed}",
        "not": f"expected a value other than {listed}",
        "present": "expected a value",
        "absent": "expected nothing",
    }[condition.test]
    return f"{where}: {wanted}, but {_found(value)}"


def judge_response(
    rules: ResponseRules | None,
    status: int,
    body: bytes,
    content_type: str | None,
    captures: Mapping[str, Capture],
) -> Judgement:
    """What ``rules`` make of an answer with HTTP ``status`` (docs/format.md, "response_rules");
    ``captures`` are the response_map's (empty for a non-2xx answer). Never raises."""
    if rules is None:
        return _NOTHING
    document, _ = read_answer(body, content_type)
    for index, entry in enumerate(rules.errors):
        if entry.status and status not in entry.status:
            continue
        if all(_holds(c, document, captures) for c in entry.when):
            code = None
            if entry.when:
                code = as_text(_subject(entry.when[0], document, captures))
            wait = None if entry.retry_after is None else as_text(_at(document, entry.retry_after))
            match = ErrorMatch(outcome=entry.outcome, index=index, code=code, retry_after=wait)
            return Judgement(error=match)
    if not 200 <= status < 300:
        return _NOTHING
    for condition in rules.require:
        value = _subject(condition, document, captures)
        if not _TESTS[condition.test](condition, value):
            return Judgement(unmet=_describe(condition, value))
    return _NOTHING
