"""(ext) Looking up before creating: a Subscribe or Unsubscribe step's ``find`` (docs/format.md,
"Look up before create").

A search names a list in the answer (a JSON Pointer, ``""`` for the answer itself), a few
``where`` pointers into an element with the template each must equal as text, and the names to
``capture`` from the first element that matches. Each element costs one pointer walk per
``where`` entry, and a search has at most 8 of them (the schema's bound): the cost is linear in
the answer, whatever the file. The answer is read by the same bounded reader as a
``response_map``. Nothing here raises, whatever the body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._model import FindRule, RequestTemplate
from ._patterns import as_text
from ._response import read_answer
from ._response_rules import _MISSING, _at
from ._template import Lookup, compile_text

__all__ = ["Found", "find_in_answer", "only_if_holds"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Found:
    """What the searches found: each capture's text, or None when its search found no element
    (or the element has no scalar there); ``problem`` when a search's list is not in the
    answer, which fails the step."""

    values: Mapping[str, str | None] = field(default_factory=dict)
    problem: str | None = None


def find_in_answer(
    rules: Sequence[FindRule], body: bytes, content_type: str | None, variables: Lookup
) -> Found:
    """Apply a step's searches, in order, to its answer (docs/format.md, "Look up before
    create"). ``variables`` render the ``where`` templates."""
    if not rules:
        return Found()
    document, _ = read_answer(body, content_type)
    values: dict[str, str | None] = {}
    for rule in rules:
        items = _at(document, rule.in_)
        if not isinstance(items, list):
            where = f"at {rule.in_}" if rule.in_ else "as the whole answer"
            return Found(values=values, problem=f"the answer has no list {where}")
        wanted = [(pointer, compile_text(text)(variables)) for pointer, text in rule.where]
        element = next((e for e in items if _matches(e, wanted)), _MISSING)
        for name, pointer in rule.capture:
            values[name] = None if element is _MISSING else as_text(_at(element, pointer))
    return Found(values=values)


def _matches(element: object, wanted: Sequence[tuple[str, str | None]]) -> bool:
    for pointer, text in wanted:
        value = _at(element, pointer)
        if text is None or value is _MISSING or as_text(value) != text:
            return False
    return True


def only_if_holds(template: RequestTemplate, variables: Lookup) -> bool:
    """Whether a step's ``only_if`` lets it be made (docs/format.md, "Look up before create"): a
    variable has a value when it is there and not empty. A step without one is always made."""
    condition = template.only_if
    if condition is None:
        return True
    return bool(variables.get(condition.name)) == condition.present
