"""(ext) Value filters (docs/format.md, "Value filters"): ``$status|trim_suffix:.null$``,
``$id|part:-:1$``, ``$status|lower$``, ``$code|map:DELIVRD=delivered,UNDELIV=failed$``,
``$name|default:text$``.

A value filter cleans one value, in a request template (before any encoding filter) or in a
webhook model's capture (after ``decode``, before ``patterns`` and ``build``). Each is linear in
its value, never makes a value longer than the longer of the value and its own argument, and never
fails: a value it does not apply to passes as it is. ``default:`` is the only one that reads a
missing value; the others leave no value as no value.

:func:`parse_value_filter` reads one filter's text (a filter that is not a value filter is None;
a value filter with a bad argument raises :class:`FilterSyntaxError`, whose message the checker
reports); :func:`apply_value_filter` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "MAX_FILTERS",
    "MAX_MAP_ENTRIES",
    "MAX_PART_INDEX",
    "VALUE_FILTERS",
    "FilterSyntaxError",
    "ValueFilter",
    "apply_value_filter",
    "parse_value_filter",
]

#: Filters one placeholder may carry, encodings included (docs/format.md, "Limits").
MAX_FILTERS: Final = 4
#: Entries of one ``map:`` (docs/format.md, "Limits").
MAX_MAP_ENTRIES: Final = 32
#: The largest index (either sign) ``part:`` takes.
MAX_PART_INDEX: Final = 64

#: The value filters by name; the form each is written in, for messages.
VALUE_FILTERS: Final = MappingProxyType(
    {
        "trim_prefix": "trim_prefix:TEXT",
        "trim_suffix": "trim_suffix:TEXT",
        "part": "part:SEPARATOR:INDEX",
        "upper": "upper",
        "lower": "lower",
        "map": "map:FROM=TO,FROM=TO",
        "default": "default:TEXT",
    }
)
_WITH_ARGUMENT: Final = frozenset({"trim_prefix", "trim_suffix", "part", "map", "default"})
_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class FilterSyntaxError(ValueError):
    """A value filter written wrong; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class ValueFilter:
    """One parsed value filter: its name and what its argument says."""

    name: str
    text: str = ""  # trim_prefix, trim_suffix, default: the literal; part: the separator
    index: int = 0  # part
    table: Mapping[str, str] | None = None  # map


def parse_value_filter(filter_text: str) -> ValueFilter | None:
    """The value filter ``filter_text`` writes; None when its name is not a value filter (an
    encoding, ``base_url``). Raises FilterSyntaxError for a value filter with a bad argument."""
    name, colon, argument = filter_text.partition(":")
    if name not in VALUE_FILTERS:
        return None
    form = VALUE_FILTERS[name]
    if name not in _WITH_ARGUMENT:
        if colon:
            raise FilterSyntaxError(f"{name} takes no argument (write {form})")
        return ValueFilter(name)
    if not colon:
        raise FilterSyntaxError(f"{name} names its argument after a colon ({form})")
    if name == "default":
        return ValueFilter(name, text=argument)
    if not argument:
        raise FilterSyntaxError(f"{name} needs a non-empty argument ({form})")
    if name == "part":
        return _part(argument, form)
    if name == "map":
        return ValueFilter(name, table=_table(argument, form))
    return ValueFilter(name, text=argument)


def _part(argument: str, form: str) -> ValueFilter:
    separator, colon, index = argument.rpartition(":")
    digits = index[1:] if index.startswith("-") else index
    if not colon or not separator or not digits.isdecimal() or not digits.isascii():
        raise FilterSyntaxError(
            f"part takes a separator and an index ({form}: part:.:0 is the text before the first "
            "'.', part:.:-1 after the last)"
        )
    number = int(index)
    if abs(number) > MAX_PART_INDEX:
        raise FilterSyntaxError(f"part's index is at most {MAX_PART_INDEX} either way, not {index}")
    return ValueFilter("part", text=separator, index=number)


def _table(argument: str, form: str) -> Mapping[str, str]:
    entries = argument.split(",")
    if len(entries) > MAX_MAP_ENTRIES:
        raise FilterSyntaxError(
            f"map lists at most {MAX_MAP_ENTRIES} values, this has {len(entries)}"
        )
    table: dict[str, str] = {}
    for entry in entries:
        source, equals, target = entry.partition("=")
        if not equals or not source or "=" in target:
            raise FilterSyntaxError(
                f"map entry {entry!r} is not FROM=TO ({form}; FROM is not empty, neither holds "
                "',' or '=')"
            )
        if source in table:
            raise FilterSyntaxError(f"map lists {source!r} twice")
        table[source] = target
    return MappingProxyType(table)


def apply_value_filter(value_filter: ValueFilter, value: str | None) -> str | None:
    """``value`` through one value filter: linear in the value, never raising. No value stays no
    value except through ``default:``; a value the filter does not apply to passes as it is."""
    name = value_filter.name
    if value is None:
        return value_filter.text if name == "default" else None
    if name == "trim_suffix":
        return value.removesuffix(value_filter.text)
    if name == "trim_prefix":
        return value.removeprefix(value_filter.text)
    if name == "upper":
        return value.translate(_ASCII_UPPER)
    if name == "lower":
        return value.translate(_ASCII_LOWER)
    if name == "map":
        assert value_filter.table is not None
        return value_filter.table.get(value, value)
    if name == "part":
        return _take_part(value, value_filter.text, value_filter.index)
    return value  # default: a value is itself


def _take_part(value: str, separator: str, index: int) -> str:
    """The index-th piece of ``value`` split at ``separator`` (negative: from the end); the value
    as it is when it has no such piece. Splits at most index + 1 times, so the cost is linear in
    the value whatever the index."""
    if index >= 0:
        pieces = value.split(separator, index + 1)
        return pieces[index] if index < len(pieces) and separator in value else value
    pieces = value.rsplit(separator, -index)
    return pieces[index] if -index <= len(pieces) and separator in value else value
