"""Template trees and strings compiled once into small rendering functions (docs/format.md,
"Placeholders" and "Requests").

A template string that is exactly one placeholder takes the variable's value keeping its type (a
list stays a list); without a value it renders as :data:`MISSING`, and the object key or list item
that held it is left out. A placeholder inside a longer string is interpolated (a missing value is
``""``). Numbers, booleans and null pass through. Only the template is ever parsed, so a value is
substituted once and never re-scanned. Object keys are literal text, not templates.

(ext) ``$name|filter$`` writes the value in a text encoding (:mod:`._codecs`), each element of a
list alike; value filters (:mod:`._filters`: ``trim_suffix:``, ``part:``, ``lower``, ``map:``, …)
clean it first where they are written first, the filters running left to right; and
``$name|default:text$`` stands for ``text`` when the variable has no value, so a sole
placeholder with a default is never left out (docs/format.md, "Requests", "Value filters"); and an
object
``{"$switch": "$encoding$", "cases": {...}, "default": ...}`` renders as
the case named by the text of its ``$switch`` template, else its ``default``, else it is left out,
as is a case or default that is ``null`` (docs/format.md, "Text encodings"); and an object
``{"$each": "replies", "item": {...}}`` renders as a list, its ``item`` once per item of the send's
list with that item's variables (:mod:`._each`; docs/format.md, "Lists of items: $each").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final, TypeAlias

from ._codecs import encode_value
from ._each import EACH, ITEM, LISTS
from ._errors import RenderError
from ._filters import ValueFilter, apply_value_filter, parse_value_filter
from ._model import Frozen, thaw
from ._placeholders import Placeholder, parse_template

__all__ = [
    "BASE_URL_FILTER",
    "MISSING",
    "SWITCH",
    "Lookup",
    "Masked",
    "Missing",
    "Rendered",
    "TextRenderer",
    "TreeRenderer",
    "Value",
    "compile_text",
    "compile_tree",
    "filter_value",
    "placeholder_text",
    "text_names",
    "tree_names",
    "value_text",
]

Value: TypeAlias = str | tuple[str, ...] | None
Lookup: TypeAlias = Mapping[str, Value]


class Missing:
    """The type of :data:`MISSING`: a sole placeholder whose variable has no value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()

#: What a rendered tree holds: plain JSON (dicts, lists, scalars) or MISSING at the top.
Rendered: TypeAlias = object
TreeRenderer: TypeAlias = Callable[[Lookup], Rendered]
#: Renders a string template to text, or ``None`` when it is one placeholder without a value.
TextRenderer: TypeAlias = Callable[[Lookup], str | None]

#: How a list value is written inside a longer string (and in a header or URL).
LIST_SEPARATOR = ","
#: (ext) The key that makes a template object a choice between cases.
SWITCH: Final = "$switch"


def value_text(value: object) -> str:
    """The text of a variable's value inside a longer string; no value is ``""``."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, tuple | list):
        return LIST_SEPARATOR.join(value_text(v) for v in value)
    return str(value)


class Masked(str):
    """A secret's stand-in in a rendering for display: filters leave it as it is, so the display
    shows the mask, not an encoding of it."""

    __slots__ = ()


#: (ext) ``$name|base_url$``: the value that opens a request_url is a whole base URL
#: (docs/format.md, "Requests"); :mod:`._url` reads it, the value is written as it is.
BASE_URL_FILTER: Final = "base_url"


@lru_cache(maxsize=1024)
def _value_filter(name: str) -> ValueFilter | None:
    return parse_value_filter(name)


def filter_value(placeholder: Placeholder, value: str | None) -> str | None:
    """``value`` through the placeholder's filters, left to right (docs/format.md, "Value
    filters"): value filters clean it (``default:`` gives a missing value its text), encoding
    filters write it; ``base_url`` is read by :mod:`._url`. A masked secret stays the mask."""
    if isinstance(value, Masked):
        return value
    for name in placeholder.filters:
        if name == BASE_URL_FILTER:
            continue
        try:
            value_filter = _value_filter(name)
            if value_filter is not None:
                value = apply_value_filter(value_filter, value)
            elif value is not None:
                value = encode_value(name, value)
        except KeyError:
            raise RenderError(f"{placeholder.shown}: unknown filter {name!r}") from None
        except ValueError as e:  # FilterSyntaxError included: the checker refuses it first
            raise RenderError(f"{placeholder.shown}: {e}") from None
    return value


def _lookup(placeholder: Placeholder, values: Lookup) -> Value:
    value = values.get(placeholder.name)
    if not placeholder.filters:
        return value
    if isinstance(value, tuple):
        return tuple(filter_value(placeholder, v) or "" for v in value)
    return filter_value(placeholder, value)


def placeholder_text(placeholder: Placeholder, values: Lookup) -> str:
    """The text a placeholder stands for inside a longer string, through its filters."""
    value = values.get(placeholder.name)
    if not placeholder.filters:
        return value_text(value)
    text = value if isinstance(value, str) or value is None else value_text(value)
    return filter_value(placeholder, text) or ""


def _sole(placeholder: Placeholder) -> TreeRenderer:
    name = placeholder.name
    # The common case, a placeholder without a filter, stays one dictionary look-up (send path).
    lookup: Callable[[Lookup], Value] = (
        (lambda values: _lookup(placeholder, values))
        if placeholder.filters
        else (lambda values: values.get(name))
    )

    def render(values: Lookup) -> Rendered:
        value = lookup(values)
        if value is None:
            return MISSING
        if isinstance(value, tuple):
            return list(value)
        return value

    return render


def _interpolation(parts: tuple[str | Placeholder, ...]) -> TreeRenderer:
    def render(values: Lookup) -> Rendered:
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif part.filters:
                out.append(placeholder_text(part, values))
            else:
                out.append(value_text(values.get(part.name)))
        return "".join(out)

    return render


def _switch(
    on: TextRenderer, cases: Mapping[str, TreeRenderer], default: TreeRenderer | None
) -> TreeRenderer:
    def render(values: Lookup) -> Rendered:
        key = on(values)
        chosen = cases.get(key) if key is not None else None
        if chosen is None:
            chosen = default
        return MISSING if chosen is None else chosen(values)

    return render


def _left_out(values: Lookup) -> Rendered:
    return MISSING


def _choice(tree: Frozen, omit_empty: bool) -> TreeRenderer:
    """A case or default of a switch: ``null`` there leaves the key out."""
    return _left_out if tree is None else compile_tree(tree, omit_empty=omit_empty)


def _compile_switch(tree: Mapping[str, Frozen], omit_empty: bool) -> TreeRenderer:
    on = tree[SWITCH]
    cases = tree.get("cases")
    return _switch(
        compile_text(on if isinstance(on, str) else ""),
        (
            {str(k): _choice(v, omit_empty) for k, v in cases.items()}
            if isinstance(cases, Mapping)
            else {}
        ),
        _choice(tree["default"], omit_empty) if "default" in tree else None,
    )


def _compile_each(tree: Mapping[str, Frozen], omit_empty: bool) -> TreeRenderer:
    """(ext) ``{"$each": list, "item": template}``: the item once per item of the list, as a
    list; no item (or a list the checker refuses) leaves it out."""
    spec = LISTS.get(tree[EACH]) if isinstance(tree[EACH], str) else None
    if spec is None or ITEM not in tree:
        return _left_out
    item = compile_tree(tree[ITEM], omit_empty=omit_empty)
    binds = spec.binds
    count_of = binds[0][1]

    def render(values: Lookup) -> Rendered:
        first = values.get(count_of)
        count = len(first) if isinstance(first, tuple) else 0
        if not count:
            return MISSING
        lists = [(name, values.get(source)) for name, source in binds]
        out = []
        for i in range(count):
            own: dict[str, Value] = {
                name: (v[i] or None) if isinstance(v, tuple) and i < len(v) else None
                for name, v in lists
            }
            rendered = item({**values, **own})
            if rendered is not MISSING:
                out.append(rendered)
        return out

    return render


def _has_each(tree: Frozen) -> bool:
    if isinstance(tree, Mapping):
        return EACH in tree or any(_has_each(v) for v in tree.values())
    if isinstance(tree, tuple):
        return any(_has_each(v) for v in tree)
    return False


def _constant(value: object) -> TreeRenderer:
    return lambda values: value


def _string(text: str) -> TreeRenderer:
    segments = parse_template(text)
    if not any(isinstance(s, Placeholder) for s in segments):
        return _constant("".join(s for s in segments if isinstance(s, str)))
    if len(segments) == 1:
        assert isinstance(segments[0], Placeholder)
        return _sole(segments[0])
    return _interpolation(segments)


def _object(items: tuple[tuple[str, TreeRenderer], ...], omit_empty: bool) -> TreeRenderer:
    def render(values: Lookup) -> Rendered:
        out = {}
        for key, item in items:
            value = item(values)
            if value is not MISSING:
                out[key] = value
        if omit_empty and items and not out:
            return MISSING  # (ext) request_omit_empty: every key was left out
        return out

    return render


def _list(items: tuple[TreeRenderer, ...]) -> TreeRenderer:
    def render(values: Lookup) -> Rendered:
        return [v for v in (item(values) for item in items) if v is not MISSING]

    return render


def compile_tree(tree: Frozen, *, omit_empty: bool = False) -> TreeRenderer:
    """A function that renders ``tree`` with a mapping of variable values. With ``omit_empty``
    (ext, ``request_omit_empty``) an object all of whose keys were left out is left out too."""
    if isinstance(tree, Mapping) and SWITCH in tree:
        return _compile_switch(tree, omit_empty)
    if isinstance(tree, Mapping) and EACH in tree:
        return _compile_each(tree, omit_empty)
    if not tree_names(tree) and not _has_each(tree):
        return _constant(thaw(_unescape(tree)))
    if isinstance(tree, str):
        return _string(tree)
    if isinstance(tree, Mapping):
        return _object(
            tuple((str(k), compile_tree(v, omit_empty=omit_empty)) for k, v in tree.items()),
            omit_empty,
        )
    if isinstance(tree, tuple):
        return _list(tuple(compile_tree(v, omit_empty=omit_empty) for v in tree))
    return _constant(tree)


def _unescape(tree: Frozen) -> Frozen:
    """A placeholder-free tree with its strings' ``$$`` written as ``$``."""
    if isinstance(tree, str):
        return "".join(s for s in parse_template(tree) if isinstance(s, str))
    if isinstance(tree, Mapping):
        return {k: _unescape(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_unescape(v) for v in tree)
    return tree


def compile_text(text: str) -> TextRenderer:
    """A function that renders one template string to text (a list value joined with ``,``)."""
    render = _string(text)

    def render_text(values: Lookup) -> str | None:
        value = render(values)
        if value is MISSING:
            return None
        return value if isinstance(value, str) else value_text(value)

    return render_text


def text_names(text: str) -> frozenset[str]:
    """The variable names a template string uses."""
    return frozenset(s.name for s in parse_template(text) if isinstance(s, Placeholder))


def tree_names(tree: Frozen) -> frozenset[str]:
    """The variable names used anywhere in a template tree (values, not keys)."""
    if isinstance(tree, str):
        return text_names(tree)
    if isinstance(tree, Mapping):
        return frozenset().union(*(tree_names(v) for v in tree.values()))
    if isinstance(tree, tuple):
        return frozenset().union(*(tree_names(v) for v in tree))
    return frozenset()


def captured_names(response_map: Frozen) -> frozenset[str]:
    """The variables a Subscribe or Unsubscribe request's response_map captures for the requests
    after it (``$error$`` is the reason for a refusal, not a variable)."""
    return tree_names(response_map) - {"error"}
