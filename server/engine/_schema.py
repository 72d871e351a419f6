"""The structural half of validation: the JSON Schema (``schema.json``) and plain-language errors.

``schema.json`` ships inside this package and is the file editors use (``integrations/schema.json``
links to it). Every :class:`jsonschema.ValidationError` is turned into a :class:`Problem` at the
pointer an author would look at: an unknown key at its own pointer (``/Webhooks``), a bad value at
that value (``/auth/type``), a missing key at the object that lacks it. One small function per
schema keyword does the wording.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from ._errors import Problem
from ._pointer import child, pointer

__all__ = ["schema", "structure_problems"]


@cache
def schema() -> Mapping[str, Any]:
    """The definition format's JSON Schema (draft 2020-12), read once from the package."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _unique_items(
    validator: Any, unique: object, instance: object, _schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``uniqueItems`` in linear time.

    jsonschema's own check compares every pair of items when they cannot be sorted (objects), so
    a definition listing 80,000 distinct objects where strings belong took hours to check. Items
    are compared here by a hashable form with JSON's equality (``1`` equals ``1.0``, ``true`` does
    not equal ``1``); nesting is bounded by the reader (:data:`._document.MAX_DEPTH`).
    """
    if unique is not True or not isinstance(instance, list):
        return
    seen: set[object] = set()
    for item in instance:
        key = _comparable(item)
        if key in seen:
            yield ValidationError("the same item appears more than once")
            return
        seen.add(key)


def _comparable(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list):
        return ("list", tuple(_comparable(item) for item in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((key, _comparable(item)) for key, item in value.items()))
    return ("text", value)


@cache
def _validator() -> Draft202012Validator:
    # validators.extend has no type annotations in types-jsonschema
    linear = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"uniqueItems": _unique_items}
    )
    validator: Draft202012Validator = linear(schema())
    return validator


def structure_problems(document: object) -> list[Problem]:
    """Every way ``document`` departs from the schema, each as a plain sentence at its pointer."""
    problems: list[Problem] = []
    for error in _validator().iter_errors(document):
        problems.extend(_translate(error))
    return problems


def _translate(error: ValidationError) -> Iterator[Problem]:
    path = list(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        # the key itself is at fault; jsonschema reports it at the object that holds it
        at = child(pointer(path), error.instance)
        reason = _custom(error) or "this name is not allowed here"
        yield Problem(pointer=at, message=f'"{error.instance}" is not a valid key: {reason}')
        return
    wording = _WORDING.get(str(error.validator), _fallback)
    yield from wording(error, path)


Wording = Callable[[ValidationError, list[str | int]], Iterator[Problem]]


def _type(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    expected = _value(error)
    names = [expected] if isinstance(expected, str) else list(expected)
    wanted = _either([_TYPE_NAMES.get(n, n) for n in names])
    yield _at(path, f"{_subject(path)} must be {wanted}, not {_kind(error.instance)}")


def _required(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    for key in _value(error):
        if key not in instance:
            yield _at(path, f'{_subject(path)} is missing the required key "{key}"')


def _additional(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    allowed = list(_schema_of(error).get("properties", {}))
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    for key in instance:
        if key in allowed:
            continue
        guess = _guess(key, allowed)
        hint = (
            f'; did you mean "{guess}"?'
            if guess
            else f"; allowed here: {', '.join(json.dumps(k) for k in allowed)}"
        )
        yield _at([*path, key], f'unknown key "{key}"{hint}')


def _enum(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    options = [json.dumps(v) for v in _value(error)]
    message = f"{_subject(path)} must be {_either(options)}, not {_described(error.instance)}"
    if isinstance(error.instance, str):
        guess = _guess(error.instance, [v for v in _value(error) if isinstance(v, str)])
        if guess:
            message += f' (did you mean "{guess}"?)'
    yield _at(path, message)


def _const(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    custom = _custom(error)
    if custom:
        yield _at(path, f"{custom} ({_shown(error.instance)} given)")
    else:
        wanted = json.dumps(_value(error))
        yield _at(path, f"{_subject(path)} must be {wanted}, not {_described(error.instance)}")


def _pattern(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    custom = _custom(error) or f"{_subject(path)} does not have the expected form"
    yield _at(path, f"{custom} ({_shown(error.instance)} given)")


def _min_length(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    n = _value(error)
    if n == 1:
        yield _at(path, f"{_subject(path)} must not be empty")
    else:
        yield _at(path, f"{_subject(path)} must be at least {n} characters long")


def _max_length(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, f"{_subject(path)} must be at most {_value(error)} characters long")


def _min_items(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    n = _value(error)
    yield _at(path, f"{_subject(path)} must have at least {n} item{'s' if n != 1 else ''}")


def _min_properties(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, _custom(error) or f"{_subject(path)} must not be empty")


def _minimum(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, f"{_subject(path)} must be at least {_value(error)}")


def _exclusive_minimum(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, f"{_subject(path)} must be more than {_value(error)}")


def _maximum(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, f"{_subject(path)} must be at most {_value(error)}")


def _unique(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, f"{_subject(path)} must not hold the same item twice")


def _fallback(error: ValidationError, path: list[str | int]) -> Iterator[Problem]:
    yield _at(path, _custom(error) or f"{_subject(path)} is not valid: {error.message}")


_WORDING: dict[str, Wording] = {
    "type": _type,
    "required": _required,
    "additionalProperties": _additional,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minItems": _min_items,
    "minProperties": _min_properties,
    "minimum": _minimum,
    "exclusiveMinimum": _exclusive_minimum,
    "maximum": _maximum,
    "uniqueItems": _unique,
}

_TYPE_NAMES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def _at(path: Sequence[str | int], message: str) -> Problem:
    return Problem(pointer=pointer(path), message=message)


def _value(error: ValidationError) -> Any:
    """The value of the schema keyword that failed (``["a", "b"]`` for an enum)."""
    return error.validator_value


def _schema_of(error: ValidationError) -> Mapping[str, Any]:
    """The schema object holding the keyword that failed."""
    return error.schema if isinstance(error.schema, Mapping) else {}


def _custom(error: ValidationError) -> str | None:
    custom = _schema_of(error).get("errorMessage")
    return custom if isinstance(custom, str) else None


def _subject(path: Sequence[str | int]) -> str:
    """How a sentence names the value at ``path``: its key, or its place in a list."""
    if not path:
        return "the definition"
    last = path[-1]
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else None
        return f"item {last} of {parent}" if isinstance(parent, str) else f"item {last}"
    return last


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {_shown(value)}"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _described(value: object) -> str:
    """A value in a sentence: a string quoted as in the file, anything else by its kind."""
    return _shown(value) if isinstance(value, str) else _kind(value)


def _shown(value: object, limit: int = 60) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _either(options: Sequence[str]) -> str:
    if len(options) <= 1:
        return "".join(options)
    return f"{', '.join(options[:-1])} or {options[-1]}"


def _guess(word: str, options: Sequence[str]) -> str | None:
    for option in options:
        if option.lower() == word.lower():
            return option
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return close[0] if close else None
