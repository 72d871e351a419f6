"""(ext) A webhook model's ``repeated``: which value of a repeated field the model reads
(docs/format.md, "Webhook bodies").

A form, a query or a multipart body gives a field sent more than once as the list of its values,
in order (:mod:`._parse`); that stays the default. A model may say, per top-level field, that it
wants ``"first"`` or ``"last"`` of them (a single value stays as it is), or ``"list"``: always a
list, a single value being a list of one (MessageBird sends one ``mediaUrls`` per media). (ext) A
name that opens with ``/`` is a JSON Pointer to a field inside nested objects (Telegram's
``/message/photo``, a photo's sizes, of which the last is the largest). The payload is reduced for
that model only, before its pattern is laid over it; the body as stored is never changed. Pure
code, one dictionary copy per object on the way, per model that declares it: linear in the
payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

from ._pointer import tokens

__all__ = ["REPEATED_CHOICES", "Repeated", "apply_repeated"]

Repeated: TypeAlias = Literal["list", "first", "last"]
REPEATED_CHOICES: Final = ("list", "first", "last")


def _reduced(value: object, choice: str) -> object:
    if choice == "list":
        if value is None or isinstance(value, dict | list):
            return value
        return [value]
    if isinstance(value, list) and value:
        return value[0] if choice == "first" else value[-1]
    return value


def apply_repeated(repeated: Mapping[str, str], payload: object) -> object:
    """``payload`` with each field ``repeated`` names reduced as it says; a payload that is not an
    object, or has none of the fields, is returned as it is."""
    if not repeated or not isinstance(payload, dict):
        return payload
    for name, choice in repeated.items():
        path = tokens(name) if name.startswith("/") else (name,)
        payload = _reduce_at(payload, path, choice)
    return payload


def _reduce_at(payload: dict[str, object], path: tuple[str, ...], choice: str) -> dict[str, object]:
    """``payload`` with the field at ``path`` (through nested objects) reduced; itself when a
    step is missing or not an object."""
    name = path[0]
    if name not in payload:
        return payload
    value = payload[name]
    if len(path) > 1:
        reduced = _reduce_at(value, path[1:], choice) if isinstance(value, dict) else value
    else:
        reduced = _reduced(value, choice)
    if reduced is value:
        return payload
    changed = dict(payload)
    changed[name] = reduced
    return changed
