"""The message state rule: which states a receipt may move a sent message to, from which.

Written once, here, as a table; each backend's ``UPDATE`` is generated from it at import
(:func:`transition_guard`), and the Python checks read the same table. Terminal states are
sticky: DELIVERED and FAILED change only a ``pending``, ``sending`` or ``sent`` message, SENT
only a ``pending`` or ``sending`` one (a receipt may overtake its send's answer), and nothing
makes a message ``pending`` again (see :meth:`Store.ingest`). A ``queued`` or ``cancelled``
message has never been sent: no receipt moves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from ._base import InboundEventType, MessageRecord, MessageState, MessageTransition

__all__ = [
    "ALLOWED_FROM",
    "PARTS_RULE",
    "RECEIPT_STATES",
    "part_of",
    "parts_state",
    "parts_target",
    "transition_guard",
    "transition_params",
]

ALLOWED_FROM: Final[Mapping[MessageState, frozenset[MessageState]]] = MappingProxyType(
    {
        MessageState.SENT: frozenset({MessageState.PENDING, MessageState.SENDING}),
        MessageState.DELIVERED: frozenset(
            {MessageState.PENDING, MessageState.SENDING, MessageState.SENT}
        ),
        MessageState.FAILED: frozenset(
            {MessageState.PENDING, MessageState.SENDING, MessageState.SENT}
        ),
    }
)
"""Target state → the states a message may be in for a receipt to move it there."""

PARTS_RULE: Final[tuple[tuple[MessageState, str], ...]] = (
    (MessageState.FAILED, "any"),
    (MessageState.DELIVERED, "all"),
)
"""(ext) A message of several parts (docs/format.md, "Several requests per send"): each part
moves by :data:`ALLOWED_FROM` on its own receipts, and the message takes the first state of this
list that ``any`` or ``all`` of its parts are in — FAILED as soon as one part failed, DELIVERED
once every part (with a provider id) was delivered — else SENT. The message's own move is then
checked against :data:`ALLOWED_FROM` like any receipt's, so it stays sticky."""

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


def parts_state(states: Iterable[MessageState]) -> MessageState:
    """The state :data:`PARTS_RULE` gives a message whose parts are in ``states``."""
    seen = list(states)
    for state, quantifier in PARTS_RULE:
        test = any if quantifier == "any" else all
        if seen and test(s is state for s in seen):
            return state
    return MessageState.SENT


def part_of(message: MessageRecord, provider_message_id: str | None) -> str | None:
    """The part a receipt with ``provider_message_id`` is about, when ``message`` has several
    parts and that is one of their ids; else None (the receipt moves the message itself)."""
    if provider_message_id and provider_message_id in message.provider_message_ids:
        return provider_message_id
    return None


def parts_target(requested: str, part: str, message: str) -> str:
    """The SQL expression of the state a transition moves a message to: ``requested`` (an
    expression) when ``part`` (the part's provider id parameter) is NULL, else the state
    :data:`PARTS_RULE` gives the parts of ``message`` (its id parameter) — read after the part
    itself was moved."""

    def where(state: MessageState, quantifier: str) -> str:
        test = f"state = '{state.value}'" if quantifier == "any" else f"state <> '{state.value}'"
        found = f"EXISTS (SELECT 1 FROM message_parts WHERE message_id = {message} AND {test})"  # noqa: S608 - from the rule's table
        return found if quantifier == "any" else f"NOT {found}"

    arms = " ".join(
        f"WHEN {where(state, quantifier)} THEN '{state.value}'" for state, quantifier in PARTS_RULE
    )
    return (
        f"(CASE WHEN {part} IS NULL THEN {requested} {arms} ELSE '{MessageState.SENT.value}' END)"
    )


def transition_params(transition: MessageTransition, stamp: object) -> tuple[Any, ...]:
    """A transition's parameters: state, error, ``stamp`` (the time, as stored), message id,
    and the part's provider id (None: a message of one request). A state no receipt may set
    (``pending``) is the caller's ValueError."""
    state = MessageState(transition.state)
    if state not in ALLOWED_FROM:
        raise ValueError(
            f"message {transition.message_id!r}: a receipt cannot make it {state.value}"
        )
    return (state.value, transition.error, stamp, transition.message_id, transition.part)
