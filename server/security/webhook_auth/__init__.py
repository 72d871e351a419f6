"""Webhook authenticity (docs/format.md, "WebhookAuth"): prove that a webhook comes from the
provider.

Pure code: no I/O and no clock (the current time is an argument). One entry point,
:func:`verify_webhook`, checks a :class:`SignedRequest` against a definition's
:class:`~server.engine.WebhookAuth` — ``hmac``, ``twilio``, ``ed25519``, ``jwt``, ``basic`` or
(ext) ``token`` and ``rsa`` —
with secrets rendered from the installation's property values, and raises
:class:`WebhookAuthFailed` when the request is not proven genuine. Where a scheme signs a
timestamp, a request outside the replay window (``tolerance_s``, default 300 s) fails too.
"""

from ._configuration import key_problems
from ._failed import WebhookAuthFailed
from ._request import SignedRequest
from ._secrets import secret_header, secret_values
from ._verify import verify_webhook

__all__ = [
    "SignedRequest",
    "WebhookAuthFailed",
    "key_problems",
    "secret_header",
    "secret_values",
    "verify_webhook",
]
