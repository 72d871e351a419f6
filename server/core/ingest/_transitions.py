"""What a receipt does to the message it reports on (docs/format.md, "Receipts": message states).

Read by the ingest path when a receipt finds its message at once, and by the held receipts when
one finds it later. The table itself is the store's (:data:`server.store.RECEIPT_STATES`), beside
the rule of which state may follow which, so it is written once."""

from __future__ import annotations

from ...store import RECEIPT_STATES, MessageRecord, MessageTransition, part_of

__all__ = ["transition_for"]


def transition_for(
    event_type: str, message: MessageRecord, error: str | None, provider_message_id: str | None
) -> MessageTransition | None:
    """The state a receipt of ``event_type`` with ``provider_message_id`` moves ``message`` to
    (for a message of several parts, the part it names first: docs/format.md, "Several requests
    per send"); None for a report that changes no state (``messageRead``, ``messageStatus``:
    docs/format.md, "More event types")."""
    state = RECEIPT_STATES.get(event_type)
    if state is None:
        return None
    return MessageTransition(
        message_id=message.id,
        state=state,
        error=error or None,
        part=part_of(message, provider_message_id),
    )
