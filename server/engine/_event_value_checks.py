"""(ext) Checks of a webhook model's ``build`` and ``patterns`` (docs/format.md, "Built values,
extra fields and validation patterns"): a template names captures its model makes, plainly; a
pattern tests a capture of its model and is in the linear pattern language; ``keep`` names the
model's own captures and built values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._event_values import EVENT_CAPTURES
from ._placeholders import has_stray_dollar, placeholders_in
from ._pointer import child
from ._value_patterns import PatternSyntaxError, ValuePattern, compile_value_pattern
from ._variables import webhook_model_strings, webhook_models

__all__ = ["EVENT_VALUE_CHECKS", "built_names", "declared_captures"]


def _captures(i: int, model: Mapping[str, Any]) -> dict[str, bool]:
    """The model's capture names, each True when some capture of it is not optional."""
    names: dict[str, bool] = {}
    for string in webhook_model_strings(i, model):
        for p in placeholders_in(string.text):
            if p.name != "event_key":
                names[p.name] = names.get(p.name, False) or not (p.optional or string.optional)
    return names


def declared_captures(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """Per model (by its pointer, "/Webhook/i/"), the capture names its ``build`` templates,
    ``keep`` and ``patterns`` use: a model may capture any name it uses there, beside the
    event's own fields; a capture used nowhere is still an unknown placeholder (a typo)."""
    declared: dict[str, set[str]] = {}
    for i, model in webhook_models(document):
        names: set[str] = set()
        build = model.get("build")
        if isinstance(build, Mapping):
            names.update(
                p.name for t in build.values() if isinstance(t, str) for p in placeholders_in(t)
            )
        keep = model.get("keep")
        if isinstance(keep, list):
            names.update(n for n in keep if isinstance(n, str))
        patterns = model.get("patterns")
        if isinstance(patterns, Mapping):
            names.update(str(n) for n in patterns)
        declared[f"/Webhook/{i}/"] = names
    return declared


def built_names(i: int, model: Mapping[str, Any]) -> set[str]:
    """The names the model's ``build`` always gives a value: every capture its template names
    is made and not optional (a template of literals alone always has its value)."""
    build = model.get("build")
    if not isinstance(build, Mapping):
        return set()
    captured = _captures(i, model)
    return {
        str(name)
        for name, template in build.items()
        if isinstance(template, str)
        and all(captured.get(p.name, False) for p in placeholders_in(template))
    }


def check_build(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A template names only captures its model makes, as plain ``$name$``."""
    for i, model in webhook_models(document):
        build = model.get("build")
        if not isinstance(build, Mapping):
            continue
        captured = _captures(i, model)
        for name, template in build.items():
            if not isinstance(template, str):
                continue
            at = child(f"/Webhook/{i}/build", str(name))
            if has_stray_dollar(template):
                yield Problem(
                    pointer=at,
                    message="a $ that opens no placeholder; write $$ for a literal $",
                )
            for p in placeholders_in(template):
                if p.filters or p.optional:
                    yield Problem(
                        pointer=at,
                        message=f"{p.shown}: a built value names captures plainly, as "
                        f"${p.name}$ (no filters, no ?: a missing capture leaves the value "
                        "without one)",
                    )
                if p.name not in captured:
                    yield Problem(
                        pointer=at,
                        message=f"the model never captures ${p.name}$: a built value reads "
                        "the captures of its own model",
                    )


def check_patterns(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A validation pattern tests a capture of its model and is in the pattern language."""
    # (ext) a platform's ids and user names have the platform's own shapes, which a pattern may
    # well check (docs/format.md, "Addresses"): the three shapes below are phone addresses'
    phone = document.get("addresses", "phone") == "phone"
    for i, model in webhook_models(document):
        patterns = model.get("patterns")
        if not isinstance(patterns, Mapping):
            continue
        captured = _captures(i, model)
        for name, source in patterns.items():
            at = child(f"/Webhook/{i}/patterns", str(name))
            if name not in captured:
                yield Problem(
                    pointer=at,
                    message=f"the model never captures ${name}$: patterns test captures of "
                    "their own model (a built value is not tested)",
                )
            if isinstance(source, str):
                try:
                    pattern = compile_value_pattern(source)
                except PatternSyntaxError as e:
                    yield Problem(pointer=at, message=f"not a valid pattern: {e}")
                    continue
                if phone:
                    yield from _address_shape(at, str(name), pattern)


# One address of each shape the gateway keeps (docs/format.md, "Numbers"): a phone number, a
# short code, a sender name.
_ADDRESS_SHAPES = ("+15551234567", "12345", "A0PNCHHK2")


def _address_shape(at: str, name: str, pattern: ValuePattern) -> Iterator[Problem]:
    """A pattern on ``from`` or ``to`` that refuses an address of some shape: the gateway never
    refuses an address for its shape (docs/format.md, "Numbers"), and such a payload would be
    kept unmatched. A warning, since a model may be meant for short codes alone."""
    if name not in ("from", "to"):
        return
    refused = [a for a in _ADDRESS_SHAPES if not pattern.matches(a)]
    if refused:
        yield Problem(
            pointer=at,
            message=f"this pattern refuses ${name}$ values shaped like {refused[0]!r}: "
            "addresses are never refused for their shape (a phone number, a short code or a "
            "sender name), and a payload it refuses is kept unmatched",
            severity="warning",
        )


def check_keep(document: Mapping[str, Any]) -> Iterator[Problem]:
    """``keep`` names captures or built names of its model that are not event fields; a built
    name that is not an event field is kept (else it would be built for nothing)."""
    for i, model in webhook_models(document):
        keep = model.get("keep")
        kept = {str(n) for n in keep if isinstance(n, str)} if isinstance(keep, list) else set()
        build = model.get("build")
        built = {str(n) for n in build} if isinstance(build, Mapping) else set()
        made = set(_captures(i, model)) | built
        for j, name in enumerate(keep if isinstance(keep, list) else ()):
            if not isinstance(name, str):
                continue
            at = f"/Webhook/{i}/keep/{j}"
            if name in EVENT_CAPTURES:
                yield Problem(
                    pointer=at,
                    message=f"${name}$ is one of the event's own fields, never an extra field",
                )
            elif name not in made:
                yield Problem(
                    pointer=at,
                    message=f"the model neither captures nor builds ${name}$: keep names its "
                    "own captures and built values",
                )
        for name in sorted(built - EVENT_CAPTURES - kept):
            yield Problem(
                pointer=child(f"/Webhook/{i}/build", name),
                message=f"${name}$ is not an event field and not in keep: a built value is "
                f"either an event field ({', '.join(sorted(EVENT_CAPTURES))}) or kept",
            )


EVENT_VALUE_CHECKS = (check_build, check_patterns, check_keep)
