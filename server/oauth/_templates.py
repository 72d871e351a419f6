"""Rendering the OAuth2 and JWT templates of a definition with an installation's property values.

The rules are those of requests (docs/format.md, "Requests"): a template string that is exactly
one placeholder keeps its value's type and, without a value, leaves its key out; a placeholder
inside a longer string is interpolated (no value is ``""``); numbers, booleans and null pass
through; values are never re-scanned. URLs go through :func:`server.engine.render_request`, so
that a value can never change an endpoint's structure (the same guarantee as a provider request's
``request_url``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from server.engine import (
    Definition,
    Frozen,
    Placeholder,
    RenderError,
    RequestTemplate,
    Value,
    parse_template,
    render_request,
)

from ._errors import InvalidOAuthSetup

__all__ = ["render_text", "render_tree", "render_url"]

_LIST_SEPARATOR = ","


class _Missing:
    __slots__ = ()


_MISSING = _Missing()


def _text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return _LIST_SEPARATOR.join(value)
    return value


def render_text(template: str, values: Mapping[str, Value]) -> str:
    """``template`` with every placeholder replaced by its value's text (``""`` for none)."""
    return "".join(
        _text(values.get(s.name)) if isinstance(s, Placeholder) else s
        for s in parse_template(template)
    )


def _render(tree: Frozen, values: Mapping[str, Value]) -> object:
    if isinstance(tree, str):
        segments = parse_template(tree)
        if len(segments) == 1 and isinstance(segments[0], Placeholder):
            value = values.get(segments[0].name)
            if value is None:
                return _MISSING
            return list(value) if isinstance(value, tuple) else value
        return render_text(tree, values)
    if isinstance(tree, Mapping):
        rendered = {key: _render(item, values) for key, item in tree.items()}
        return {key: item for key, item in rendered.items() if item is not _MISSING}
    if isinstance(tree, tuple):
        items = (_render(item, values) for item in tree)
        return [item for item in items if item is not _MISSING]
    return tree


def render_tree(tree: Frozen, values: Mapping[str, Value]) -> object:
    """The plain JSON ``tree`` renders to (None when it is one placeholder without a value)."""
    rendered = _render(tree, values)
    return None if rendered is _MISSING else rendered


@functools.lru_cache(maxsize=256)
def _url_template(pointer: str, url: str) -> RequestTemplate:
    # One template object per URL, so that the engine's compiled-template cache is reused.
    return RequestTemplate(
        pointer=pointer, method="GET", url=url, content_type="application/json", parameters=None
    )


def render_url(definition: Definition, pointer: str, url: str, values: Mapping[str, Value]) -> str:
    """The endpoint URL template ``url`` (found at ``pointer``) rendered with ``values``.

    Raises :class:`InvalidOAuthSetup` when a value would change the URL's structure.
    """
    try:
        return render_request(definition, _url_template(pointer, url), values).url
    except RenderError as exc:
        raise InvalidOAuthSetup(f"{pointer} cannot be used: {exc}") from None
