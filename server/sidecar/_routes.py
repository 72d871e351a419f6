"""The sidecar's paths, written down once: the sidecar serves them, the core reads a delivery's
path with them, and the installations' webhook URLs and the OAuth2 ``redirect_uri`` are built
from them.

- ``/webhooks/{integration id}/{token}``: one installation's webhook (docs/format.md, "Inbound").
- ``/webhooks/{integration id}``: an integration's webhook, the installation found from the body.
- ``/oauth/callback``: where the provider sends the admin back after consent (docs/format.md,
  "OAuth2").
- ``/media/{media id}?e=…&s=…``: stored media at a signed, expiring URL (``server/media``
  signs it; the sidecar serves it, never forwarding it as a webhook).
- ``/healthz``, ``/readyz``: the sidecar's own, never forwarded to the core.
"""

from __future__ import annotations

import re

__all__ = [
    "FORWARDED_PATHS",
    "HEALTH_PATH",
    "MEDIA_EXPIRES_PARAM",
    "MEDIA_PATH",
    "MEDIA_ROUTE",
    "MEDIA_SIGNATURE_PARAM",
    "OAUTH_CALLBACK_PATH",
    "READY_PATH",
    "is_media_id",
    "is_oauth_callback",
    "kept_webhook_path",
    "media_path",
    "webhook_path",
    "webhook_target",
]

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
OAUTH_CALLBACK_PATH = "/oauth/callback"
#: The prefix of every media URL.
MEDIA_PATH = "/media"
#: The media route, as an aiohttp route pattern.
MEDIA_ROUTE = f"{MEDIA_PATH}/{{media_id}}"
#: A media URL's query: its expiry (Unix seconds) and its signature.
MEDIA_EXPIRES_PARAM = "e"
MEDIA_SIGNATURE_PARAM = "s"
# What a media id may be: letters, digits, '-' and '_' (hex, UUIDs and base64url tokens fit), so
# that it stands in a path as it is and never names a folder ('.', '/').
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_WEBHOOKS = "webhooks"

#: The paths whose requests are forwarded to the core, as aiohttp route patterns.
FORWARDED_PATHS = (
    f"/{_WEBHOOKS}/{{integration_id}}/{{token}}",
    f"/{_WEBHOOKS}/{{integration_id}}",
    OAUTH_CALLBACK_PATH,
)


def webhook_path(integration_id: str, token: str | None = None) -> str:
    """The path of an integration's webhook, or of one installation's when ``token`` is given."""
    base = f"/{_WEBHOOKS}/{integration_id}"
    return f"{base}/{token}" if token is not None else base


def is_media_id(text: str) -> bool:
    """Whether ``text`` can be a media id: 1 to 128 of ``A-Z a-z 0-9 - _``."""
    return _MEDIA_ID.fullmatch(text) is not None


def media_path(media_id: str) -> str:
    """The path of a media item (its signed query comes from ``server.media``)."""
    if not is_media_id(media_id):
        raise ValueError("a media id is 1 to 128 of A-Z a-z 0-9 - _")
    return f"{MEDIA_PATH}/{media_id}"


def kept_webhook_path(integration_id: str, *, with_token: bool) -> str:
    """The path as a webhook request is stored: the token, a secret, stands as ``…``."""
    # Spelt out rather than through webhook_path: this runs once per webhook.
    if with_token:
        return f"/{_WEBHOOKS}/{integration_id}/…"
    return f"/{_WEBHOOKS}/{integration_id}"


def webhook_target(path: str) -> tuple[str, str | None] | None:
    """``(integration id, token or None)`` of a webhook path; None for any other path.

    A slash more or less at either end is tolerated: the Ingest API takes deliveries from any
    sidecar, not only from these routes."""
    parts = path.strip("/").split("/")
    if len(parts) not in (2, 3) or parts[0] != _WEBHOOKS or not parts[1]:
        return None
    return parts[1], (parts[2] if len(parts) == 3 else None)


def is_oauth_callback(path: str) -> bool:
    """Whether a delivery's path is the OAuth2 callback (a trailing slash tolerated)."""
    return path.rstrip("/") == OAUTH_CALLBACK_PATH
