"""The one exception of webhook authenticity: the request is not proven genuine."""

from __future__ import annotations

__all__ = ["WebhookAuthFailed"]


class WebhookAuthFailed(Exception):
    """A webhook failed its authenticity check (docs/format.md, "WebhookAuth"); the caller
    answers 401 and records it.

    ``reason`` is a short plain sentence, safe to record and log: it names headers and checks,
    never a secret, a signature or a property value.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
