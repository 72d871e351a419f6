"""What a receipt does to the message it reports on (docs/format.md, "Receipts": message states).

Read by the ingest path when a receipt finds its message at once, and by the held receipts when
one finds it later. The table itself is the store's (:data:`server.store.RECEIPT_STATES`), beside
the rule of which state may follow which, so it is written once."""

from __future__ import annotations

from ...store import RECEIPT_STATES, MessageTransition

__all__ = ["transition_for"]


def transition_for(event_type: str, message_id: str, error: str | None) -> MessageTransition:
    """The state a receipt of ``event_type`` moves message ``message_id`` to."""
    return MessageTransition(
        message_id=message_id, state=RECEIPT_STATES[event_type], error=error or None
    )
