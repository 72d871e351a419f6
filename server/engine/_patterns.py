"""Webhook pattern trees (docs/format.md, "Webhook models"), compiled once per model into small
matcher objects.

A pattern tree is a webhook model's ``request_parameters``: objects, one-item lists, literals and
placeholder strings. :func:`compile_pattern` turns it into a tree of :class:`Pattern` nodes, one
class per kind of pattern, each with two ways to run:

- :meth:`Pattern.match` — the hot path: fail fast, write captures into a dict, return a bool;
- :meth:`Pattern.explain` — the slow path, run only for a payload that no model matched: how many
  literal constraints held and which parts failed, as plain sentences with JSON Pointers.

Payloads are what :func:`server.engine.parse_webhook` produces: plain ``dict``/``list``/scalars.
The matcher recurses over the *pattern* only, never over the payload, so a deeply nested payload
costs nothing extra.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

from ._placeholders import Placeholder, parse_template

__all__ = [
    "Captured",
    "Captures",
    "Explanation",
    "MixedText",
    "Pattern",
    "as_text",
    "compile_headers",
    "compile_pattern",
    "describe",
    "header_fields",
    "optional_key",
]

Captured = str | tuple[str, ...]
Captures = dict[str, Captured]
Explanation = tuple[int, list[str]]  # (literal constraints that held, failures in pattern order)

EVENT_KEY: Final = "event_key"
# At most this many list elements are examined when explaining why a list pattern failed (the
# fast matcher already decided, over every element, that none matches).
_EXPLAIN_ELEMENTS: Final = 20
_SHOW_CHARS: Final = 40


def as_text(value: object) -> str | None:
    """A scalar payload value as text (JSON ``2`` → ``"2"``, ``true`` → ``"true"``), else None.

    None for JSON null, objects and lists. Numbers are their decimal text (docs/format.md,
    "Webhook models"): ``2.0`` is ``"2"``, ``1.5e3`` is ``"1500"``, ``0.0075`` stays ``"0.0075"``
    — the same in webhooks and response maps, so an id captured from either compares equal.
    """
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return number_text(value)  # type: ignore[arg-type]
    if isinstance(value, str):  # str subclasses
        return str(value)
    return None


def number_text(value: float) -> str:
    """A JSON number as decimal text: no exponent, no trailing ``.0``."""
    if not math.isfinite(value):
        return repr(value)
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def describe(value: object) -> str:
    """A payload value as a few words for a failure message (values are shortened)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = as_text(value)
    return show(text) if text is not None else type(value).__name__


def show(text: str) -> str:
    if len(text) > _SHOW_CHARS:
        text = text[: _SHOW_CHARS - 1] + "…"
    return "'" + text.replace("'", "\\'") + "'"


def _at(path: str) -> str:
    return path or "/"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class Pattern:
    """A compiled pattern node. ``constraints`` and ``captures`` are counted as docs/format.md,
    "Choosing a model" says."""

    __slots__ = ("captures", "constraints")

    constraints: int
    captures: int

    def match(self, value: object, out: Captures) -> bool:
        raise NotImplementedError

    def explain(self, value: object, path: str) -> Explanation:
        raise NotImplementedError

    @property
    def optional(self) -> bool:
        """True only for a sole ``$x?$``: the key that holds it may be absent."""
        return False


class _Literal(Pattern):
    """A literal leaf: equal to the payload value compared as text; ``None`` matches JSON null."""

    __slots__ = ("text",)

    def __init__(self, text: str | None) -> None:
        self.text = text
        self.constraints = 1
        self.captures = 0

    def match(self, value: object, out: Captures) -> bool:
        if self.text is None:
            return value is None
        return as_text(value) == self.text

    def explain(self, value: object, path: str) -> Explanation:
        if self.match(value, {}):
            return 1, []
        expected = "null" if self.text is None else show(self.text)
        return 0, [f"{_at(path)}: expected {expected}, got {describe(value)}"]


class _Capture(Pattern):
    """``$x$`` (or ``$x?$``): a scalar as text, a list of scalars as a tuple, null as no value.

    A placeholder naming one of the definition's properties captures like any other name: a
    webhook pattern only reads the payload, so a property there is no constraint.
    """

    __slots__ = ("is_optional", "name")

    def __init__(self, name: str, optional: bool) -> None:
        self.name = name
        self.is_optional = optional
        self.constraints = 0
        self.captures = 0 if optional else 1

    @property
    def optional(self) -> bool:
        return self.is_optional

    def match(self, value: object, out: Captures) -> bool:
        text = as_text(value)
        if text is not None:
            out.setdefault(self.name, text)
            return True
        if value is None:
            return True  # null: no value, but the key counts as present
        if not isinstance(value, list):
            return False  # an object does not match
        items: list[str] = []
        for item in value:
            if item is None:
                continue
            item_text = as_text(item)
            if item_text is None:
                return False  # an object or a nested list: not a list of scalars
            items.append(item_text)
        out.setdefault(self.name, tuple(items))
        return True

    def explain(self, value: object, path: str) -> Explanation:
        if self.match(value, {}):
            return 0, []
        what = describe(value)
        if isinstance(value, list):
            what = "a list that holds an object or a list"
        return 0, [f"{_at(path)}: ${self.name}$ captures a value or a list of values, got {what}"]


class MixedText:
    """The linear matcher of a string mixing literals and placeholders, e.g. ``"id:$messageid$"``.

    Literal parts match exactly; each placeholder takes the shortest text that lets the rest
    match — the semantics of an anchored regex with non-greedy ``(.*?)`` groups, computed with
    ``str.find`` in time linear in the text. A regex with several such groups backtracks
    polynomially on a long text that does not fit (``$a$-$b$-$c$!`` against 400 dashes took
    seconds), and neither a definition nor a provider's answer may be able to stall the service
    (docs/format.md, "Limits"). Webhook patterns and response maps share this one matcher.

    Taking the *first* occurrence of each literal is what the non-greedy regex does, and it never
    loses a match: any later occurrence leaves less text for the literals after it.
    """

    __slots__ = ("placeholders", "prefix", "segments", "suffix")

    def __init__(self, segments: tuple[str | Placeholder, ...]) -> None:
        """``segments`` as :func:`parse_template` gives them: no empty or adjacent literals."""
        first = segments[0] if segments else None
        self.prefix = first if isinstance(first, str) else ""
        inner = segments[1:] if self.prefix else segments
        last = inner[-1] if inner else None
        self.suffix = last if isinstance(last, str) else ""
        self.segments = inner[:-1] if self.suffix else inner  # empty, or from placeholder to one
        self.placeholders = tuple(s for s in self.segments if isinstance(s, Placeholder))

    def split(self, text: str) -> list[str] | None:
        """The placeholders' values in order, or None when ``text`` does not fit."""
        if not text.startswith(self.prefix) or not text.endswith(self.suffix):
            return None
        pos = len(self.prefix)
        end = len(text) - len(self.suffix)
        if end < pos or (not self.segments and end != pos):
            return None
        values: list[str] = []
        segments = self.segments
        i, n = 0, len(segments)
        while i < n:
            following = segments[i + 1] if i + 1 < n else None
            if following is None:
                values.append(text[pos:end])
                i += 1
            elif isinstance(following, Placeholder):
                values.append("")  # two placeholders side by side: the first takes nothing
                i += 1
            else:
                found = text.find(following, pos, end)
                if found < 0:
                    return None
                values.append(text[pos:found])
                pos = found + len(following)
                i += 2
        return values


class _Mixed(Pattern):
    """A string mixing literals and placeholders, ``"message.$status$"``: a :class:`MixedText`."""

    __slots__ = ("source", "text")

    def __init__(self, source: str, segments: tuple[str | Placeholder, ...]) -> None:
        self.source = source
        self.text = MixedText(segments)
        self.constraints = sum(1 for s in segments if isinstance(s, str))
        self.captures = sum(1 for s in segments if isinstance(s, Placeholder) and not s.optional)

    def match(self, value: object, out: Captures) -> bool:
        text = as_text(value)
        if text is None:
            return False
        values = self.text.split(text)
        if values is None:
            return False
        for placeholder, captured in zip(self.text.placeholders, values, strict=True):
            if captured or not placeholder.optional:
                out.setdefault(placeholder.name, captured)
        return True

    def explain(self, value: object, path: str) -> Explanation:
        if self.match(value, {}):
            return self.constraints, []
        return 0, [f"{_at(path)}: expected text like {show(self.source)}, got {describe(value)}"]


def _best_failure(node: Pattern, items: list[tuple[str, object]]) -> Explanation:
    """Why no item matches ``node``: the explanation of the item that came closest."""
    best: Explanation | None = None
    for item_path, item in items[:_EXPLAIN_ELEMENTS]:
        held, failures = node.explain(item, item_path)
        if best is None or (held, -len(failures)) > (best[0], -len(best[1])):
            best = held, failures
    assert best is not None
    return best


def _collect(node: Pattern, values: list[object], out: Captures) -> bool:
    """Match ``node`` against each value; captures gathered over every match, in order."""
    matched = False
    gathered: dict[str, list[str]] = {}
    for value in values:
        captures: Captures = {}
        if node.match(value, captures):
            matched = True
            for name, captured in captures.items():
                bucket = gathered.setdefault(name, [])
                if isinstance(captured, str):
                    bucket.append(captured)
                else:
                    bucket.extend(captured)
    if matched:
        for name, bucket in gathered.items():
            out.setdefault(name, tuple(bucket))
    return matched


class _List(Pattern):
    """``[p]``: a list with at least one element matching ``p``; captures collect in order.

    A list pattern with several items asks the same of each item.
    """

    __slots__ = ("items",)

    def __init__(self, items: tuple[Pattern, ...]) -> None:
        self.items = items
        self.constraints = sum(p.constraints for p in items)
        self.captures = sum(p.captures for p in items)

    def match(self, value: object, out: Captures) -> bool:
        if not isinstance(value, list):
            return False
        return all(_collect(item, value, out) for item in self.items)

    def explain(self, value: object, path: str) -> Explanation:
        if not isinstance(value, list):
            return 0, [f"{_at(path)}: expected a list, got {describe(value)}"]
        held, failures = 0, []
        elements = [(f"{path}/{i}", element) for i, element in enumerate(value)]
        for item in self.items:
            if _collect(item, value, {}):
                held += item.constraints
            elif not elements:
                failures.append(f"{_at(path)}: expected a list with a matching element, got []")
            else:
                best_held, best_failures = _best_failure(item, elements)
                held += best_held
                failures.append(f"no element matches, closest: {best_failures[0]}")
        return held, failures


def _numbered_keys(payload: dict[object, object], prefix: str) -> list[str]:
    """Keys made of ``prefix`` and nothing or digits: the bare prefix first, then by number."""
    found: list[tuple[int, str, str, str]] = []
    for key in payload:
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        digits = key[len(prefix) :]
        if not digits:
            found.append((-1, "", "", key))
        elif digits.isascii() and digits.isdigit():
            significant = digits.lstrip("0")
            # compare numbers by length then text: no int() of an arbitrarily long digit string
            found.append((len(significant), significant, digits, key))
    found.sort()
    return [entry[3] for entry in found]


class _Star:
    """(ext) a ``"Prefix*"`` key: every ``Prefix``/``Prefix<digits>`` key, as one list;
    (ext) ``"Prefix*?"`` also matches when there is none."""

    __slots__ = ("is_optional", "node", "prefix")

    def __init__(self, prefix: str, node: Pattern, optional: bool) -> None:
        self.prefix = prefix
        self.node = node
        self.is_optional = optional

    @property
    def constraints(self) -> int:
        return 0 if self.is_optional else self.node.constraints

    @property
    def captures(self) -> int:
        return 0 if self.is_optional else self.node.captures

    def match(self, payload: dict[object, object], out: Captures) -> bool:
        keys = _numbered_keys(payload, self.prefix)
        if not keys:
            return self.is_optional
        return _collect(self.node, [payload[k] for k in keys], out)

    def explain(self, payload: dict[object, object], path: str) -> Explanation:
        keys = _numbered_keys(payload, self.prefix)
        if not keys:
            if self.is_optional:
                return 0, []
            key = show(self.prefix + "*")
            return 0, [f"{_at(path)}: no key matches {key}"]
        if _collect(self.node, [payload[k] for k in keys], {}):
            return self.node.constraints, []
        held, failures = _best_failure(
            self.node, [(f"{path}/{_escape(k)}", payload[k]) for k in keys]
        )
        return held, [f"no {show(self.prefix + '*')} value matches, closest: {failures[0]}"]


class _Dict(Pattern):
    """An object: every key present (extra keys ignored), each value matching its pattern."""

    __slots__ = ("entries", "stars")

    def __init__(self, entries: tuple[tuple[str, Pattern], ...], stars: tuple[_Star, ...]) -> None:
        self.entries = entries
        self.stars = stars
        self.constraints = sum(p.constraints for _, p in entries) + sum(
            s.constraints for s in stars
        )
        self.captures = sum(p.captures for _, p in entries) + sum(s.captures for s in stars)

    def match(self, value: object, out: Captures) -> bool:
        if not isinstance(value, dict):
            return False
        for key, node in self.entries:
            if key in value:
                if not node.match(value[key], out):
                    return False
            elif not node.optional:
                return False
        return all(star.match(value, out) for star in self.stars)

    def explain(self, value: object, path: str) -> Explanation:
        if not isinstance(value, dict):
            return 0, [f"{_at(path)}: expected an object, got {describe(value)}"]
        held, failures = 0, []
        for key, node in self.entries:
            at = f"{path}/{_escape(key)}"
            if key in value:
                node_held, node_failures = node.explain(value[key], at)
                held += node_held
                failures.extend(node_failures)
            elif not node.optional:
                failures.append(f"{at}: key missing")
        for star in self.stars:
            star_held, star_failures = star.explain(value, path)
            held += star_held
            failures.extend(star_failures)
        return held, failures


class _OptionalKey(Pattern):
    """(ext) The value of a ``"key?"`` key: the key may be absent (or null), and then gives no
    captures; when it has a value, that must match. Counts nothing in the ranking
    (docs/format.md, "Choosing a model"): a payload without it matches as well."""

    __slots__ = ("node",)

    def __init__(self, node: Pattern) -> None:
        self.node = node
        self.constraints = 0
        self.captures = 0

    @property
    def optional(self) -> bool:
        return True

    def match(self, value: object, out: Captures) -> bool:
        return value is None or self.node.match(value, out)

    def explain(self, value: object, path: str) -> Explanation:
        if value is None:
            return 0, []
        return self.node.explain(value, path)


def optional_key(key: str) -> tuple[str, bool]:
    """(ext) A pattern object's key as the key it names and whether it is optional: ``"context?"``
    names ``context``, which may be absent (docs/format.md, "Webhook models")."""
    if len(key) > 1 and key.endswith("?"):
        return key[:-1], True
    return key, False


def _template(text: str, event_key: str) -> Pattern:
    """A pattern string, with ``$event_key$`` replaced by the model's literal first."""
    segments: list[str | Placeholder] = []
    for segment in parse_template(text):
        if isinstance(segment, Placeholder) and segment.name == EVENT_KEY:
            segment = event_key
        if isinstance(segment, str) and segments and isinstance(segments[-1], str):
            segments[-1] += segment
        elif segment != "":
            segments.append(segment)
    if not any(isinstance(s, Placeholder) for s in segments):
        return _Literal("".join(s for s in segments if isinstance(s, str)))
    if len(segments) == 1 and isinstance(segments[0], Placeholder):
        return _Capture(segments[0].name, segments[0].optional)
    return _Mixed(text, tuple(segments))


class _Headers(Pattern):
    """(ext) A model's ``request_headers``: each named header present, its value matching.

    Header names compare case-insensitively; the payload is :func:`header_fields` of the request.
    """

    __slots__ = ("entries",)

    def __init__(self, entries: tuple[tuple[str, str, Pattern], ...]) -> None:
        self.entries = entries  # (name as written, lower-case name, pattern)
        self.constraints = sum(p.constraints for _, _, p in entries)
        self.captures = sum(p.captures for _, _, p in entries)

    def match(self, value: object, out: Captures) -> bool:
        if not isinstance(value, Mapping):
            return False
        for _, key, node in self.entries:
            if key in value:
                if not node.match(value[key], out):
                    return False
            elif not node.optional:
                return False
        return True

    def explain(self, value: object, path: str) -> Explanation:
        fields = value if isinstance(value, Mapping) else {}
        held, failures = 0, []
        for name, key, node in self.entries:
            if key in fields:
                node_held, node_failures = node.explain(fields[key], f"header {name}")
                held += node_held
                failures.extend(node_failures)
            elif not node.optional:
                failures.append(f"header {name}: missing")
        return held, failures


def header_fields(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A request's headers by lower-case name; a repeated header's values joined by ", "."""
    # Gathered, then joined once: joining as they come copied the growing value for each
    # repetition, quadratic in a header repeated thousands of times.
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)
    return {key: ", ".join(parts) for key, parts in values.items()}


def compile_headers(headers: Mapping[str, str], event_key: str) -> Pattern | None:
    """(ext) Compile a model's ``request_headers`` (name → pattern string); None when empty."""
    if not headers:
        return None
    entries = tuple(
        (name, name.lower(), _template(text, event_key)) for name, text in headers.items()
    )
    return _Headers(entries)


def compile_pattern(tree: object, event_key: str) -> Pattern:
    """Compile a (frozen or plain) pattern tree for a model whose literal is ``event_key``.

    Raises RecursionError only for a tree nested deeper than Python's recursion limit.
    """
    if isinstance(tree, Mapping):
        entries: list[tuple[str, Pattern]] = []
        stars: list[_Star] = []
        for written, sub in tree.items():
            node = compile_pattern(sub, event_key)
            key, optional = optional_key(str(written))
            if key.endswith("*"):
                stars.append(_Star(key[:-1], node, optional))
            else:
                entries.append((key, _OptionalKey(node) if optional else node))
        return _Dict(tuple(entries), tuple(stars))
    if isinstance(tree, list | tuple):
        return _List(tuple(compile_pattern(item, event_key) for item in tree))
    if isinstance(tree, str):
        return _template(tree, event_key)
    if tree is None:
        return _Literal(None)
    text = as_text(tree)
    return _Literal(text if text is not None else str(tree))
