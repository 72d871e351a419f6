"""What of a webhook request is a WebhookAuth's secret, to be masked wherever the request is kept
(docs/operations.md, "Webhook requests").

The secret options (``secret``, ``auth_token``, ``username``, ``password``, ``token``) rendered
from the installation's properties, and the header a ``token`` scheme reads, whose value is the
token itself (with its prefix) and is masked whole. A ``public_key`` is no secret.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.engine import WebhookAuth

from ._options import render

__all__ = ["secret_header", "secret_values"]

_SECRET_OPTIONS = ("secret", "auth_token", "username", "password", "token")


def secret_values(auth: WebhookAuth, properties: Mapping[str, str]) -> tuple[str, ...]:
    """The rendered secrets of ``auth`` for an installation with ``properties`` (none empty)."""
    values = (render(auth, key, properties) for key in _SECRET_OPTIONS if key in auth.options)
    return tuple(v for v in values if v)


def secret_header(auth: WebhookAuth) -> str | None:
    """The header whose whole value is a secret (a ``token`` scheme's), lower case, or None."""
    header = auth.options.get("header")
    if auth.type == "token" and isinstance(header, str):
        return header.lower()
    return None
