"""The ingest path: a provider's webhook, forwarded by the sidecar, becomes stored events.

:class:`Ingestor` checks the webhook's authentication, matches it against the definition's
``Webhook`` models, and stores the request and its events in one transaction.
"""

from ._ingestor import Ingestor, ReplayResult

__all__ = ["Ingestor", "ReplayResult"]
