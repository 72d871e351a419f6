"""The message state rule: which states a receipt may move a sent message to, from which.

Written once, here, as a table; each backend's ``UPDATE`` is generated from it at import
(:func:`transition_guard`), and the Python checks read the same table. Terminal states are
sticky: DELIVERED and FAILED change only a ``pending`` or ``sent`` message, SENT only a
``pending`` one, and nothing makes a message ``pending`` again (see :meth:`Store.ingest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from ._base import InboundEventType, MessageState, MessageTransition

__all__ = [
    "ALLOWED_FROM",
    "RECEIPT_STATES",
    "transition_guard",
    "transition_params",
]

ALLOWED_FROM: Final[Mapping[MessageState, frozenset[MessageState]]] = MappingProxyType(
    {
        MessageState.SENT: frozenset({MessageState.PENDING}),
        MessageState.DELIVERED: frozenset({MessageState.PENDING, MessageState.SENT}),
        MessageState.FAILED: frozenset({MessageState.PENDING, MessageState.SENT}),
    }
)
"""Target state → the states a message may be in for a receipt to move it there."""

RECEIPT_STATES: Final[Mapping[str, MessageState]] = MappingProxyType(
    {
        InboundEventType.MESSAGE_DELIVERED: MessageState.DELIVERED,
        InboundEventType.MESSAGE_FAILED: MessageState.FAILED,
        InboundEventType.MESSAGE_SENT: MessageState.SENT,
    }
)
"""The transition a held receipt's event type implies once its message is known."""


def transition_guard(target: str) -> str:
    """The SQL condition, on the ``state`` column, under which a message may move to the state
    in the SQL expression ``target`` (a parameter such as ``?1`` or ``$1::text``)."""

    def quoted(states: frozenset[MessageState]) -> str:
        return ", ".join(f"'{state.value}'" for state in sorted(states))

    # Grouped by the states moved from, so the condition stays short: one arm per source set.
    by_source: dict[frozenset[MessageState], set[MessageState]] = {}
    for state, sources in ALLOWED_FROM.items():
        by_source.setdefault(sources, set()).add(state)
    arms = [
        f"(state IN ({quoted(sources)}) AND {target} IN ({quoted(frozenset(targets))}))"
        for sources, targets in by_source.items()
    ]
    return "(" + " OR ".join(arms) + ")"


def transition_params(transition: MessageTransition, stamp: object) -> tuple[Any, ...]:
    """A transition's parameters: state, error, ``stamp`` (the time, as stored), message id.
    A state no receipt may set (``pending``) is the caller's ValueError."""
    state = MessageState(transition.state)
    if state not in ALLOWED_FROM:
        raise ValueError(
            f"message {transition.message_id!r}: a receipt cannot make it {state.value}"
        )
    return (state.value, transition.error, stamp, transition.message_id)
