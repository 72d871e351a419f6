"""What one ingest or replay writes, encoded before any transaction.

Encoding first means a bad value — a naive time, a PENDING transition — is the caller's
ValueError, raised before anything reaches the database (never a failed batch on the writer
thread, nor a failed PostgreSQL ingest batch). Each backend then applies an :class:`Inbound`
inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._base import HeldReceipt, MessageTransition, NewEvent
from ._media import MediaHold, hold_params
from ._rows import Rows
from ._transitions import transition_params

__all__ = ["Inbound", "part_transitions"]


def part_transitions(transitions: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Of ``transition_params`` tuples, those naming a part, as (state, message id, part)."""
    return [(t[0], t[3], t[4]) for t in transitions if t[4] is not None]


@dataclass(frozen=True, slots=True)
class Inbound:
    """Events with their ``Rows.event_params``; transitions with their parameters; held
    receipts with their ``Rows.held_params`` and the stored time their dedupe key is claimed at
    (their event's ``received_at``); media holds (docs/media.md) the same way."""

    events: tuple[tuple[NewEvent, tuple[Any, ...]], ...]
    transitions: tuple[tuple[Any, ...], ...]
    held: tuple[tuple[HeldReceipt, tuple[Any, ...], Any], ...]
    media_holds: tuple[tuple[MediaHold, tuple[Any, ...], Any], ...] = ()

    @property
    def part_transitions(self) -> list[tuple[Any, ...]]:
        """The parameters of ``APPLY_PART_TRANSITION`` (state, message id, part) of the
        transitions that name a part: applied before the transitions themselves, which read the
        parts' states (docs/format.md, "Several requests per send")."""
        return part_transitions(self.transitions)

    @classmethod
    def encode(
        cls,
        rows: Rows[Any],
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition],
        held: Sequence[HeldReceipt],
        stamp: object,
        media_holds: Sequence[MediaHold] = (),
    ) -> Inbound:
        """``stamp`` is the time of the call as stored: the transitions' ``updated_at``."""
        event_params = rows.event_params
        time_param = rows.time_param
        return cls(
            tuple((event, event_params(event)) for event in events),
            tuple(transition_params(t, stamp) for t in transitions),
            tuple((h, rows.held_params(h), time_param(h.event.received_at)) for h in held),
            tuple((h, hold_params(rows, h), time_param(h.event.received_at)) for h in media_holds),
        )
