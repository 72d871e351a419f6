"""(ext) Built values, extra fields and validation patterns of a webhook model (docs/format.md,
"Built values, extra fields and validation patterns").

Pure functions over a model's captures, applied after they are decoded: :func:`capture_filters`
reads the value filters a model's captures carry and :func:`filter_captures` applies them
(docs/format.md, "Value filters": after ``decode``, before ``patterns`` and ``build``);
:func:`failed_pattern` says which capture breaks its model's validation pattern (the model then
does not match), :func:`build_values` adds the model's ``build`` templates to the captures, and
:func:`extra_fields` keeps the captures the model's ``keep`` names as the event's extra fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from ._filters import ValueFilter, apply_value_filter, parse_value_filter
from ._patterns import Captured, Captures
from ._placeholders import Placeholder, parse_template
from ._value_patterns import ValuePattern

__all__ = [
    "EVENT_CAPTURES",
    "MAX_FIELDS",
    "MAX_FIELD_VALUE",
    "build_values",
    "capture_filters",
    "extra_fields",
    "failed_pattern",
    "filter_captures",
]

#: The capture names that make the event's own fields (docs/format.md, "Webhook models").
EVENT_CAPTURES: Final = frozenset(
    # (ext) media_id: files given as an id, in the event's media_urls ("Media given as an id")
    {"from", "to", "content", "text", "url", "messageid", "status", "error", "media_id"}
)
MAX_FIELDS: Final = 32  # extra fields one model may keep (the schema refuses more)
MAX_FIELD_VALUE: Final = 1024  # characters of one extra field's value; a longer one is cut


def capture_filters(templates: Iterable[str]) -> Mapping[str, tuple[ValueFilter, ...]]:
    """The value filters of each capture named in a model's pattern strings, by name (the first
    place that names it; the checker refuses a name written with other filters elsewhere). A
    filter that is not a value filter is skipped: the checker refuses it in a model."""
    found: dict[str, tuple[ValueFilter, ...]] = {}
    for template in templates:
        for segment in parse_template(template):
            if isinstance(segment, Placeholder) and segment.name not in found:
                chain = tuple(_value_filters(segment.filters))
                found[segment.name] = chain
    return MappingProxyType({name: chain for name, chain in found.items() if chain})


def _value_filters(filters: tuple[str, ...]) -> Iterable[ValueFilter]:
    for text in filters:
        try:
            value_filter = parse_value_filter(text)
        except ValueError:
            continue
        if value_filter is not None:
            yield value_filter


def filter_captures(filters: Mapping[str, tuple[ValueFilter, ...]], captures: Captures) -> None:
    """Run each capture through its value filters, in place: a list capture element by element;
    a capture without a value gets its ``default:`` text, if it has one."""
    for name, chain in filters.items():
        value = captures.get(name)
        if isinstance(value, tuple):
            captures[name] = tuple(_through(chain, v) or "" for v in value)
            continue
        result = _through(chain, value)
        if result is not None:
            captures[name] = result


def _through(chain: tuple[ValueFilter, ...], value: str | None) -> str | None:
    for value_filter in chain:
        value = apply_value_filter(value_filter, value)
    return value


def failed_pattern(patterns: Mapping[str, ValuePattern], captures: Captures) -> str | None:
    """The reason the first capture with a validation pattern fails it, else None. A capture
    without a value is not tested; a list capture must pass with every element."""
    for name, pattern in patterns.items():
        value = captures.get(name)
        if value is None:
            continue
        values = value if isinstance(value, tuple) else (value,)
        for element in values:
            if not pattern.matches(element):
                return f"${name}$ {_shown(element)} does not match its pattern {pattern.source!r}"
    return None


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "…"


def build_values(build: Mapping[str, str], captures: Captures) -> Captures:
    """The captures with each ``build`` template's value under its name.

    Every template reads the captures as matched (never another built value). A placeholder takes
    its capture's value, a list capture's first element; when any capture a template names has no
    value, the built name has no value either (as if it had not been captured), never a partial
    text.
    """
    if not build:
        return captures
    result: Captures = dict(captures)
    for name, template in build.items():
        value = _render(template, captures)
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def _render(template: str, captures: Captures) -> str | None:
    parts: list[str] = []
    for segment in parse_template(template):
        if isinstance(segment, Placeholder):
            value = _first(captures.get(segment.name))
            if value is None:
                return None
            parts.append(value)
        else:
            parts.append(segment)
    return "".join(parts)


def _first(value: Captured | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value[0] if value else None


def extra_fields(keep: tuple[str, ...], captures: Mapping[str, Captured]) -> Mapping[str, str]:
    """The captures (built values included) that ``keep`` names and that have a value: a list
    capture's first element, each value cut to :data:`MAX_FIELD_VALUE` characters."""
    kept: dict[str, str] = {}
    for name in keep[:MAX_FIELDS]:
        value = _first(captures.get(name))
        if value is not None:
            kept[name] = value[:MAX_FIELD_VALUE]
    return MappingProxyType(kept)
