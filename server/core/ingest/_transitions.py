"""What a receipt does to the message it reports on (docs/format.md, "Receipts": message states).

Read by the ingest path when a receipt finds its message at once, and by the held receipts when
one finds it later."""

from __future__ import annotations

from ...engine import EventType
from ...store import MessageState, MessageTransition

__all__ = ["transition_for"]

_TRANSITIONS = {
    EventType.MESSAGE_DELIVERED: MessageState.DELIVERED,
    EventType.MESSAGE_FAILED: MessageState.FAILED,
    EventType.MESSAGE_SENT: MessageState.SENT,
}


def transition_for(event_type: str, message_id: str, error: str | None) -> MessageTransition:
    """The state a receipt of ``event_type`` moves message ``message_id`` to."""
    state = _TRANSITIONS[EventType(event_type)]
    return MessageTransition(message_id=message_id, state=state, error=error or None)
