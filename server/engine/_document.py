"""Reading a definition into plain, bounded JSON before it is checked.

Whatever is handed in (text, bytes, a mapping, anything else) comes out as plain JSON made of
dicts, lists, strings, finite numbers, booleans and None — or as problems saying why it cannot be.
The bounds keep every later step safe: no value nests deeper than :data:`MAX_DEPTH`, no text is
larger than :data:`MAX_SIZE`, no object key is longer than :data:`MAX_KEY`, no number is
non-finite or absurdly long, no string holds a lone surrogate. A value that breaks a bound is
reported at its pointer and replaced by a harmless stand-in (a key too long is left out), so the
rest of the document can still be checked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ._errors import Problem
from ._pointer import child

__all__ = ["MAX_DEPTH", "MAX_KEY", "MAX_SIZE", "TOO_LARGE", "UNREADABLE", "read_document"]

MAX_SIZE = 1 << 20  # a definition is a few kilobytes; a megabyte is certainly a mistake
MAX_DEPTH = 64
# Every problem below a key carries the key in its JSON Pointer, so the checks' cost grows with
# key length times the values below it: a 500 KB key over 40,000 values took seconds to check.
# Real keys are a few dozen characters (docs/format.md, "Limits").
MAX_KEY = 256
_MAX_INT_BITS = 1024
UNREADABLE: Any = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Object(dict[str, Any]):
    """A JSON object as parsed, remembering the keys that appeared more than once."""

    duplicates: list[str]


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def read_document(data: object) -> tuple[Any, list[Problem]]:
    """Plain JSON from ``data`` and the problems met on the way.

    When ``data`` cannot be read at all, the value is :data:`UNREADABLE` and one problem says why.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > MAX_SIZE:
            return UNREADABLE, [TOO_LARGE]
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return UNREADABLE, [
                Problem(pointer="", message=f"the definition is not UTF-8 text (byte {exc.start})")
            ]
    if isinstance(data, str):
        if len(data) > MAX_SIZE:
            return UNREADABLE, [TOO_LARGE]
        try:
            data = json.loads(
                data, object_pairs_hook=_object_from_pairs, parse_constant=_reject_constant
            )
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            return UNREADABLE, [
                Problem(
                    pointer="", message=f"the definition is not valid JSON: {exc.msg} ({where})"
                )
            ]
        except RecursionError:
            return UNREADABLE, [_too_deep()]
        except _NotJson as exc:  # NaN, Infinity
            return UNREADABLE, [
                Problem(pointer="", message=f"the definition is not valid JSON: {exc}")
            ]
        except ValueError:  # an integer with thousands of digits
            return UNREADABLE, [
                Problem(pointer="", message="the definition holds a number too large")
            ]
    problems: list[Problem] = []
    return _plain(data, "", 0, problems), problems


def _plain(value: object, at: str, depth: int, problems: list[Problem]) -> Any:
    if depth > MAX_DEPTH:
        problems.append(
            Problem(pointer=at, message=f"this value is nested more than {MAX_DEPTH} levels deep")
        )
        return None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(str.__str__(value), at, problems)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            problems.append(Problem(pointer=at, message="this number is too large"))
            return 0
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.append(Problem(pointer=at, message="NaN and Infinity are not JSON numbers"))
            return 0
        return float(value)
    if isinstance(value, Mapping):
        return _plain_object(value, at, depth, problems)
    if isinstance(value, list | tuple):
        return [_plain(item, child(at, i), depth + 1, problems) for i, item in enumerate(value)]
    problems.append(Problem(pointer=at, message=f"a {type(value).__name__} is not a JSON value"))
    return None


def _plain_object(
    value: Mapping[Any, Any], at: str, depth: int, problems: list[Problem]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(Problem(pointer=at, message="an object key must be a string"))
            continue
        key = _text(str.__str__(key), at, problems)
        if len(key) > MAX_KEY:
            problems.append(
                Problem(
                    pointer=at,
                    message=f'the key "{key[:20]}…" is longer than {MAX_KEY} characters',
                )
            )
            continue
        result[key] = _plain(item, child(at, key), depth + 1, problems)
    for key in value.duplicates if isinstance(value, _Object) else ():
        problems.append(
            Problem(
                pointer=child(at, key),
                message=f'the key "{key}" appears more than once in this object; '
                "only the last one would count",
            )
        )
    return result


def _text(value: str, at: str, problems: list[Problem]) -> str:
    if _SURROGATE.search(value) is None:
        return value
    problems.append(
        Problem(
            pointer=at,
            message="this string holds an unpaired surrogate (\\uD800-\\uDFFF), which is not text",
        )
    )
    return _SURROGATE.sub("\ufffd", value)


#: What a definition larger than :data:`MAX_SIZE` is refused with.
TOO_LARGE = Problem(pointer="", message=f"the definition is larger than {MAX_SIZE // 1024} KiB")


def _too_deep() -> Problem:
    return Problem(
        pointer="", message=f"the definition is nested more than {MAX_DEPTH} levels deep"
    )
