"""Send limits (docs/delivery.md, "Limits"): the rates an installation's messages leave at, its
queue cap and its segment cap — set on the installation, else the definition's defaults
(docs/format.md, "Throughput"), else none.

Pure: a limit is data, and :func:`rate_slots` turns one message under them into the store's
:class:`~server.store.RateSlot` s (the store takes them atomically, cluster-wide).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

from ..errors import InvalidRequest
from ..store import RateSlot

__all__ = [
    "MAX_PER_SECOND",
    "UNITS",
    "SendLimits",
    "Throughput",
    "check_limits",
    "effective_limits",
    "limits_from_json",
    "limits_to_json",
    "rate_slots",
]

#: What a rate counts: each message one, or each of its SMS segments one.
UNITS: Final = ("messages", "segments")

#: The highest rate msgbridge paces (a message every 100 µs).
MAX_PER_SECOND: Final = 10_000.0


@dataclass(frozen=True, slots=True)
class Throughput:
    """``per_second`` units a second (0: no limit), with up to ``burst`` at once (0: one
    second's worth, at least 1)."""

    per_second: float = 0.0
    unit: str = "messages"
    burst: int = 0

    @property
    def limited(self) -> bool:
        return self.per_second > 0

    @property
    def effective_burst(self) -> int:
        return self.burst if self.burst > 0 else max(1, math.ceil(self.per_second))


@dataclass(frozen=True, slots=True)
class SendLimits:
    """An installation's limits; a ``None`` rate is not set (the definition's default
    applies); ``numbers`` maps a number (as stored) to its own rate."""

    per_number: Throughput | None = None
    per_installation: Throughput | None = None
    max_queued: int = 0
    max_segments: int = 0
    numbers: Mapping[str, Throughput] = field(default_factory=lambda: MappingProxyType({}))


class _Rate(Protocol):
    """A definition's default rate (``server.engine.Rate``)."""

    @property
    def per_second(self) -> float: ...
    @property
    def unit(self) -> str: ...
    @property
    def burst(self) -> int: ...


class _Defaults(Protocol):
    """A definition's defaults (``server.engine.ThroughputDefaults``)."""

    @property
    def per_number(self) -> _Rate | None: ...
    @property
    def per_installation(self) -> _Rate | None: ...


def _from_rate(rate: _Rate | None) -> Throughput | None:
    if rate is None:
        return None
    return Throughput(per_second=rate.per_second, unit=rate.unit, burst=rate.burst)


def effective_limits(own: SendLimits, defaults: _Defaults | None) -> SendLimits:
    """The installation's limits with the definition's defaults where it sets none."""
    if defaults is None:
        return own
    return SendLimits(
        per_number=own.per_number or _from_rate(defaults.per_number),
        per_installation=own.per_installation or _from_rate(defaults.per_installation),
        max_queued=own.max_queued,
        max_segments=own.max_segments,
        numbers=own.numbers,
    )


def rate_slots(
    limits: SendLimits, installation_id: str, number: str, segments: int
) -> tuple[RateSlot, ...]:
    """The rates a message of ``segments`` segments from ``number`` is sent under: its number's
    (its own, else the installation's per-number rate) and the installation's."""
    slots = []
    per_number = limits.numbers.get(number) or limits.per_number
    keyed = (
        (f"n:{installation_id}:{number}", per_number),
        (f"i:{installation_id}", limits.per_installation),
    )
    for key, rate in keyed:
        if rate is not None and rate.limited:
            cost = max(1, segments) if rate.unit == "segments" else 1
            slots.append(
                RateSlot(
                    key=key,
                    cost=float(cost),
                    interval_s=1.0 / rate.per_second,
                    burst=float(rate.effective_burst),
                )
            )
    return tuple(slots)


# --- stored form ---------------------------------------------------------------------------------


def _throughput_json(rate: Throughput) -> dict[str, Any]:
    return {"per_second": rate.per_second, "unit": rate.unit, "burst": rate.burst}


def limits_to_json(limits: SendLimits) -> str:
    """The installation's ``send_limits_json`` ("" for no limits of its own)."""
    value: dict[str, Any] = {}
    if limits.per_number is not None:
        value["per_number"] = _throughput_json(limits.per_number)
    if limits.per_installation is not None:
        value["per_installation"] = _throughput_json(limits.per_installation)
    if limits.max_queued:
        value["max_queued"] = limits.max_queued
    if limits.max_segments:
        value["max_segments"] = limits.max_segments
    if limits.numbers:
        value["numbers"] = {n: _throughput_json(r) for n, r in sorted(limits.numbers.items())}
    return json.dumps(value, sort_keys=True) if value else ""


def _throughput(value: Mapping[str, Any]) -> Throughput:
    return Throughput(
        per_second=float(value.get("per_second", 0.0)),
        unit=str(value.get("unit", "messages")),
        burst=int(value.get("burst", 0)),
    )


def limits_from_json(text: str) -> SendLimits:
    """An installation's limits from its ``send_limits_json``."""
    if not text:
        return SendLimits()
    value = json.loads(text)
    return SendLimits(
        per_number=_throughput(value["per_number"]) if "per_number" in value else None,
        per_installation=(
            _throughput(value["per_installation"]) if "per_installation" in value else None
        ),
        max_queued=int(value.get("max_queued", 0)),
        max_segments=int(value.get("max_segments", 0)),
        numbers=MappingProxyType({n: _throughput(r) for n, r in value.get("numbers", {}).items()}),
    )


def check_throughput(rate: Throughput, field_name: str) -> list[tuple[str, str]]:
    """What is wrong with a rate an operator gave, as BadRequest field violations."""
    problems = []
    if not 0 <= rate.per_second <= MAX_PER_SECOND or math.isnan(rate.per_second):
        problems.append((f"{field_name}.per_second", f"from 0 to {MAX_PER_SECOND:g}"))
    if rate.unit not in UNITS:
        problems.append((f"{field_name}.unit", "messages or segments"))
    if not 0 <= rate.burst <= 1_000_000:
        problems.append((f"{field_name}.burst", "from 0 to 1000000"))
    return problems


def check_limits(limits: SendLimits) -> None:
    """Raise INVALID_ARGUMENT with every problem of an operator's limits."""
    violations: list[tuple[str, str]] = []
    for name in ("per_number", "per_installation"):
        rate = getattr(limits, name)
        if rate is not None:
            violations.extend(check_throughput(rate, f"send_limits.{name}"))
    for number, rate in limits.numbers.items():
        violations.extend(check_throughput(rate, f"numbers[{number}].throughput"))
    if not 0 <= limits.max_queued <= 10_000_000:
        violations.append(("send_limits.max_queued", "from 0 to 10000000"))
    if not 0 <= limits.max_segments <= 255:
        violations.append(("send_limits.max_segments", "from 0 to 255"))
    if violations:
        raise InvalidRequest("the send limits are not valid", violations=violations)
