"""(ext) Per-installation variants (docs/format.md, "Variants").

A property with ``options`` is a choice an admin makes per installation; ``variants`` maps such a
property and one of its options to an overlay — a JSON merge patch (RFC 7386) of ``auth``,
``API``, ``Subscribe``, ``Unsubscribe`` and ``number_format`` — applied to the file when the
installation has chosen that option. This module:

- checks ``variants`` itself (a property without options, an option it does not have, too many
  combinations), and the ``required_when`` of the properties only some choices need;
- builds each combination's document, so that every one is checked as if it were chosen and is
  loaded once, when the definition is (never per send).

The number of combinations is bounded by :data:`MAX_COMBINATIONS`, so checking and loading cost at
most that many times a plain definition.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ._errors import Problem
from ._placeholders import placeholders_in
from ._pointer import child, tokens

__all__ = [
    "MAX_COMBINATIONS",
    "Combination",
    "choice_properties",
    "combinations",
    "merge_patch",
    "placed",
    "used_in_variants",
    "variant_problems",
]

#: The most documents the options of the ``variants`` properties may multiply into.
MAX_COMBINATIONS: Final = 16

#: One combination: the chosen option of each variants property (in ``variants`` order), the
#: options whose overlay it applies, and the resulting document (without ``variants``).
Combination = tuple[tuple[str, ...], tuple[tuple[str, str], ...], dict[str, Any]]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def choice_properties(document: Mapping[str, Any]) -> dict[str, tuple[tuple[str, ...], str]]:
    """Each well-formed property with options: its options and its default option."""
    found: dict[str, tuple[tuple[str, ...], str]] = {}
    items = document.get("properties")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        options = item.get("options")
        if not isinstance(options, list) or not options:
            continue
        if not all(isinstance(o, str) for o in options):
            continue
        default = item.get("default")
        chosen: str = default if isinstance(default, str) and default in options else options[0]
        found[item["name"]] = (tuple(options), chosen)
    return found


def variant_problems(document: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with the properties that have options, and with ``variants`` itself.
    (What an overlay may change is the schema's ``variantOverlay``.)"""
    problems = [*_option_problems(document), *_required_when_problems(document)]
    variants = document.get("variants")
    if not isinstance(variants, dict):
        return problems  # absent, or the schema already said it is not an object
    choices = choice_properties(document)
    count = 1
    for name, by_value in variants.items():
        at = child("/variants", name)
        if name not in choices:
            declared = name in _property_names(document)
            why = "has no options" if declared else "is not a declared property"
            problems.append(
                Problem(
                    pointer=at,
                    message=f'variants are chosen by a property with options; "{name}" {why}',
                )
            )
            continue
        options, _ = choices[name]
        count *= len(options)
        for value in by_value if isinstance(by_value, dict) else ():
            if value not in options:
                shown = ", ".join(f'"{o}"' for o in options)
                problems.append(
                    Problem(
                        pointer=child(at, value),
                        message=f'"{value}" is not an option of "{name}" ({shown})',
                    )
                )
    if count > MAX_COMBINATIONS:
        problems.append(
            Problem(
                pointer="/variants",
                message=f"the variants' options make {count} combinations; at most "
                f"{MAX_COMBINATIONS} are allowed (each is checked as a whole definition)",
            )
        )
    return problems


def _property_names(document: Mapping[str, Any]) -> set[str]:
    items = document.get("properties")
    names = set()
    for item in items if isinstance(items, list) else ():
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str):
            names.add(name)
    return names


def _option_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    items = document.get("properties")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict) or not isinstance(item.get("options"), list):
            continue
        at = child("/properties", index)
        options = item["options"]
        if item.get("secret") is True:
            yield Problem(
                pointer=child(at, "secret"),
                message="a property with options is a choice, not a secret: "
                'leave "secret" out or false',
            )
        default = item.get("default")
        if isinstance(default, str) and default not in options:
            yield Problem(
                pointer=child(at, "default"),
                message=f'the default "{default}" is not one of its options',
            )


def _required_when_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    """(ext) ``required_when`` names choices and their options, on a property that is not itself
    a choice and does not also say ``"required": true`` (docs/format.md, "Variants")."""
    choices = choice_properties(document)
    declared = _property_names(document)
    items = document.get("properties")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict) or not isinstance(item.get("required_when"), dict):
            continue
        at = child(child("/properties", index), "required_when")
        if item.get("required") is True:
            yield Problem(
                pointer=child(child("/properties", index), "required"),
                message='"required": true makes the property required for every choice; '
                "leave it out where required_when says which choices need it",
            )
        if "options" in item:
            yield Problem(
                pointer=at,
                message="a property with options always has a value (its default): "
                "required_when is for the properties some choices need",
            )
        for name, wanted in item["required_when"].items():
            if name not in choices:
                why = "has no options" if name in declared else "is not a declared property"
                yield Problem(
                    pointer=child(at, name),
                    message=f'required_when names a property with options; "{name}" {why}',
                )
                continue
            options, _ = choices[name]
            for position, value in enumerate(wanted if isinstance(wanted, list) else ()):
                if value not in options:
                    shown = ", ".join(f'"{o}"' for o in options)
                    yield Problem(
                        pointer=child(child(at, name), position),
                        message=f'"{value}" is not an option of "{name}" ({shown})',
                    )


def combinations(document: Mapping[str, Any]) -> list[Combination]:
    """Every distinct document the variants make, with the choices that make it.

    Only call on a document whose ``variants`` passed :func:`variant_problems`. Choices whose
    options apply the same overlays share a document; the list holds each such document once,
    with every choice tuple that leads to it in :func:`choice_keys` order.
    """
    variants: dict[str, Any] = document.get("variants") or {}
    choices = choice_properties(document)
    base = {k: v for k, v in document.items() if k != "variants"}
    names = list(variants)
    result: list[Combination] = []
    for values in itertools.product(*(choices[name][0] for name in names)):
        applied = tuple(
            (name, value)
            for name, value in zip(names, values, strict=True)
            if value in variants[name]
        )
        merged = base
        for name, value in applied:
            merged = merge_patch(merged, variants[name][value])
        result.append((tuple(values), applied, merged))
    return result


def placed(
    problem: Problem, applied: tuple[tuple[str, str], ...], variants: Mapping[str, Any]
) -> Problem:
    """A combination's problem, at the overlay that wrote the place when one did, and saying
    which choices it is about."""
    where = problem.pointer
    for name, value in reversed(applied):  # the last overlay applied wins
        if _covers(variants[name][value], tokens(problem.pointer)):
            where = child(child("/variants", name), value) + problem.pointer
            break
    said = ", ".join(f'"{name}" is "{value}"' for name, value in applied)
    return Problem(
        pointer=where, message=f"when {said}: {problem.message}", severity=problem.severity
    )


def _covers(overlay: Any, path: tuple[str, ...]) -> bool:
    """Whether ``overlay`` writes the value at ``path`` or one of its parents' values."""
    node = overlay
    for token in path:
        if not isinstance(node, dict):
            return True  # the overlay replaced a whole value above the place
        if token not in node:
            return False
        node = node[token]
    return True


def used_in_variants(document: Mapping[str, Any]) -> set[str]:
    """The properties ``variants`` uses: those that choose, and those its overlays' strings name."""
    variants = document.get("variants")
    if not isinstance(variants, dict):
        return set()
    used = set(variants)
    stack: list[Any] = [variants]
    while stack:  # the document is bounded in size and depth (._document)
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            used.update(p.name for p in placeholders_in(node))
    return used
