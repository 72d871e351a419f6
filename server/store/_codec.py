"""How record values become column values and back.

Times are integer microseconds since the Unix epoch, UTC (they sort, compare and index as
integers, and keep the microsecond exactly). Maps and number assignments are compact JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from ._base import NumberAssignment

__all__ = [
    "decode_headers",
    "decode_map",
    "decode_numbers",
    "decode_texts",
    "decode_time",
    "encode_headers",
    "encode_map",
    "encode_numbers",
    "encode_texts",
    "encode_time",
    "frozen_map",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_time(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store keeps UTC times only")
    return (value - _EPOCH) // _MICROSECOND


def decode_time(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def encode_map(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def decode_map(text: str) -> Mapping[str, str]:
    data = json.loads(text)
    return MappingProxyType({str(k): str(v) for k, v in data.items()})


def encode_numbers(numbers: tuple[NumberAssignment, ...]) -> str:
    items = [{"number": n.number, "given": n.given, "users": list(n.users)} for n in numbers]
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


def decode_numbers(text: str) -> tuple[NumberAssignment, ...]:
    items: list[dict[str, Any]] = json.loads(text)
    return tuple(
        NumberAssignment(
            number=item["number"], given=item["given"], users=tuple(item.get("users", ()))
        )
        for item in items
    )


def encode_texts(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def decode_texts(text: str) -> tuple[str, ...]:
    return tuple(str(value) for value in json.loads(text))


def encode_headers(headers: Sequence[tuple[str, str]]) -> str:
    return json.dumps([[k, v] for k, v in headers], ensure_ascii=False, separators=(",", ":"))


def decode_headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))
