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
from ._rows import Rows
from ._transitions import transition_params

__all__ = ["Inbound"]


@dataclass(frozen=True, slots=True)
class Inbound:
    """Events with their ``Rows.event_params``; transitions with their parameters; held
    receipts with their ``Rows.held_params`` and the stored time their dedupe key is claimed at
    (their event's ``received_at``)."""

    events: tuple[tuple[NewEvent, tuple[Any, ...]], ...]
    transitions: tuple[tuple[Any, ...], ...]
    held: tuple[tuple[HeldReceipt, tuple[Any, ...], Any], ...]

    @classmethod
    def encode(
        cls,
        rows: Rows[Any],
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition],
        held: Sequence[HeldReceipt],
        stamp: object,
    ) -> Inbound:
        """``stamp`` is the time of the call as stored: the transitions' ``updated_at``."""
        event_params = rows.event_params
        time_param = rows.time_param
        return cls(
            tuple((event, event_params(event)) for event in events),
            tuple(transition_params(t, stamp) for t in transitions),
            tuple((h, rows.held_params(h), time_param(h.event.received_at)) for h in held),
        )
