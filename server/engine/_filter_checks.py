"""The checks of placeholder filters (docs/format.md, "Text encodings" and "Value filters"):
encodings and ``base_url`` in request templates, value filters in request templates and webhook
models' captures, each known, well written, and bounded.

Like :mod:`._checks`, each function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._codecs import ENCODINGS
from ._encoding_checks import guess
from ._errors import Problem
from ._filters import MAX_FILTERS, VALUE_FILTERS, FilterSyntaxError, parse_value_filter
from ._placeholders import Placeholder, parse_template, placeholders_in
from ._template import BASE_URL_FILTER
from ._variables import (
    REQUEST_SCOPES,
    WEBHOOK,
    TemplateString,
    template_strings,
    webhook_model_strings,
    webhook_models,
)

__all__ = ["FILTER_CHECKS"]

_EVERY_FILTER = (*ENCODINGS, BASE_URL_FILTER, *VALUE_FILTERS)


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def check_filters(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Each filter is known and well written, where it has a meaning: value filters in requests
    and webhook models, encodings and ``base_url`` in requests only; at most four on one
    placeholder, one of them an encoding."""
    for template in template_strings(document):
        for placeholder in placeholders_in(template.text):
            if placeholder.filters:
                yield from _check_placeholder(template, placeholder)


def _check_placeholder(template: TemplateString, placeholder: Placeholder) -> Iterator[Problem]:
    at, shown, scope = template.pointer, placeholder.shown, template.scope
    in_request = scope.name in REQUEST_SCOPES
    if not in_request and scope is not WEBHOOK:
        yield _error(
            at,
            f"{shown}: filters work in requests (SendMessage, SendFile, SendTyping, MarkRead, "
            "Subscribe, Unsubscribe, the token request) "
            f"and webhook models, not in {scope.name}",
        )
        return
    if not placeholder.name:
        yield _error(at, f"{shown}: a placeholder needs a name before |")
    if scope is WEBHOOK and placeholder.name == "event_key":
        yield _error(at, f"{shown}: $event_key$ is the model's own key, a literal: no filters")
        return
    if len(placeholder.filters) > MAX_FILTERS:
        yield _error(at, f"{shown}: a placeholder takes at most {MAX_FILTERS} filters")
        return
    encodings = 0
    defaults = 0
    for name in placeholder.filters:
        if name == "default":
            yield _error(
                at,
                f"{shown}: the default filter names its text after a colon: "
                f"${placeholder.name}|default:$ stands for an empty string",
            )
            continue
        try:
            value_filter = parse_value_filter(name)
        except FilterSyntaxError as e:
            yield _error(at, f"{shown}: {e}")
            continue
        if value_filter is not None:
            defaults += value_filter.name == "default"
            continue
        if name not in ENCODINGS and name != BASE_URL_FILTER:
            yield _error(
                at,
                f"{shown}: unknown filter {name!r}{guess(name, _EVERY_FILTER)}; the filters are "
                f"the value filters {', '.join(VALUE_FILTERS)}, the encodings "
                f"{', '.join(ENCODINGS)} and base_url",
            )
            continue
        if not in_request:
            yield _error(
                at,
                f"{shown}: {name} writes a value into a request; a webhook model's capture takes "
                "value filters only (decode reads a capture's encoding)",
            )
            continue
        encodings += 1
        # (ext) $name|base_url$ opens a request_url: the value is a whole base URL
        if name == BASE_URL_FILTER and not _opens_request_url(at, template.text, placeholder):
            yield _error(
                at,
                f"{shown}: base_url is for the placeholder that opens a request_url "
                "(the value is then a whole base URL)",
            )
    if encodings > 1:
        # each encoding may multiply the value's size (hex doubles it): one keeps a rendered
        # request within a constant factor of its values (docs/format.md, "Limits")
        yield _error(at, f"{shown}: a placeholder takes one encoding filter (or base_url)")
    if defaults > 1:
        yield _error(at, f"{shown}: a placeholder takes one default:")


def _opens_request_url(pointer: str, text: str, placeholder: Placeholder) -> bool:
    segments = parse_template(text)
    # (ext) a Media resolve's download is a URL too ("Media given as an id")
    opens = pointer.endswith("/request_url") or pointer == "/Media/resolve/download"
    return opens and bool(segments) and segments[0] == placeholder


def check_capture_filters(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A name a webhook model captures in several places carries the same filters at each: the
    model filters a capture once, by name (docs/format.md, "Value filters")."""
    for i, model in webhook_models(document):
        first: dict[str, tuple[tuple[str, ...], str]] = {}
        for template in webhook_model_strings(i, model):
            for placeholder in placeholders_in(template.text):
                seen = first.setdefault(placeholder.name, (placeholder.filters, template.pointer))
                if seen[0] != placeholder.filters:
                    written = "|".join(seen[0]) or "no filters"
                    yield _error(
                        template.pointer,
                        f"{placeholder.shown}: ${placeholder.name}$ is captured with "
                        f"{written!s} at {seen[1]}; a name captured in several places takes the "
                        "same filters at each",
                    )


FILTER_CHECKS = (check_filters, check_capture_filters)
