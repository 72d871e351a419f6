"""The ingest path: a provider's webhook, forwarded by the sidecar, becomes stored events.

:class:`Ingestor` checks the webhook's authentication, matches it against the definition's
``Webhook`` models, and stores the request and its events in one transaction.
:class:`HeldReceipts` completes the receipts that arrived before their send's reply, and releases
those still held after ``receipt_wait``.
"""

from ._contact_names import LOOKUP_TIMEOUT_S, ContactNames
from ._held_receipts import HeldReceipts
from ._ingestor import Ingestor, ReplayResult, event_dedupe_key

__all__ = [
    "LOOKUP_TIMEOUT_S",
    "ContactNames",
    "HeldReceipts",
    "Ingestor",
    "ReplayResult",
    "event_dedupe_key",
]
