"""Opt-outs (docs/delivery.md, "Opt-outs"), for both backends: their row mapping, and the rule by
which ingested events record and clear them.

The rule lives here, once, so that SQLite and PostgreSQL apply it alike inside their ingest
transactions: an opt-out is written in the same commit as the STOP-type event that reports it, so
no send can slip between the event being stored and the opt-out taking effect, and a replayed or
duplicate event changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ._base import InboundEventType, NewEvent
from ._queue import OptOutRecord
from ._rows import Rows

__all__ = [
    "INBOUND_SOURCE",
    "OPT_OUT_COLUMNS",
    "OptOutChanges",
    "OptOutKey",
    "opt_out",
    "opt_out_changes",
    "opt_out_params",
]

OPT_OUT_COLUMNS: Final = (
    "installation_id",
    "org_id",
    "from_number",
    "to_number",
    "source",
    "created_at",
)

# OptOutRecord.source of an opt-out an inbound event reported (a send's error: "provider").
INBOUND_SOURCE: Final = "inbound"

OptOutKey = tuple[str, str, str]
"""(installation id, from number, to number): the primary key of ``opt_outs``."""


def opt_out_params(rows: Rows[Any], record: OptOutRecord) -> tuple[Any, ...]:
    """A record's :data:`OPT_OUT_COLUMNS` values."""
    return (
        record.installation_id,
        record.org_id,
        record.from_number,
        record.to_number,
        record.source,
        rows.time_param(record.created_at),
    )


def opt_out(rows: Rows[Any], row: Any) -> OptOutRecord:
    """A row of :data:`OPT_OUT_COLUMNS`."""
    return OptOutRecord(
        installation_id=row[0],
        org_id=row[1],
        from_number=row[2],
        to_number=row[3],
        source=row[4],
        created_at=rows.time_value(row[5]),
    )


@dataclass(frozen=True, slots=True)
class OptOutChanges:
    """What a transaction's appended events do to the opt-outs, applied in this order: delete
    the ``clear`` keys, then insert the ``keep`` records, each unless one with its key exists.

    Clearing first and keeping after is the same as applying the events one by one: per key,
    ``keep`` holds the first opt-out after the key's last opt-in (or after the start), and
    ``clear`` every key an opt-in named.
    """

    clear: tuple[OptOutKey, ...]
    keep: tuple[OptOutRecord, ...]

    def __bool__(self) -> bool:
        return bool(self.clear or self.keep)


def _key(event: NewEvent) -> OptOutKey:
    # Our number is the event's `to`; the recipient who opted out is its `from`
    # (docs/format.md, "More event types").
    return (event.installation_id, event.to_number, event.from_number)


def opt_out_changes(appended: Iterable[NewEvent]) -> OptOutChanges:
    """The changes of ``appended`` — the events a transaction appends, in cursor order, never
    its duplicates: each ``optedOut`` of an installation records an opt-out (installation, our
    number ``to_number`` as ``from_number``, the recipient ``from_number`` as ``to_number``, the
    event's org, source ``inbound``, created at its ``received_at``; an existing one is kept),
    each ``optedIn`` clears it. An event of no installation changes nothing."""
    clear: dict[OptOutKey, None] = {}
    keep: dict[OptOutKey, OptOutRecord] = {}
    for event in appended:
        if not event.installation_id:
            continue
        if event.type == InboundEventType.OPTED_OUT:
            key = _key(event)
            if key not in keep:
                keep[key] = OptOutRecord(
                    installation_id=event.installation_id,
                    org_id=event.org_id,
                    from_number=event.to_number,
                    to_number=event.from_number,
                    source=INBOUND_SOURCE,
                    created_at=event.received_at,
                )
        elif event.type == InboundEventType.OPTED_IN:
            key = _key(event)
            keep.pop(key, None)
            clear[key] = None
    # In key order: two transactions touching the same keys take their row locks alike.
    return OptOutChanges(tuple(sorted(clear)), tuple(keep[key] for key in sorted(keep)))
