"""Reading a WebhookAuth's options: secrets rendered from properties, and typed settings.

Secrets are templates (``"$Webhook secret$"``) rendered from the installation's property values
with the engine's placeholder grammar. A secret that renders empty is never accepted as "no
check": it fails with "no secret configured".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from server.engine import WebhookAuth, parse_template

from ._failed import WebhookAuthFailed

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "choice",
    "flag",
    "render",
    "secret",
    "text",
    "tolerance",
]

DEFAULT_TOLERANCE_S = 300


def render(auth: WebhookAuth, key: str, properties: Mapping[str, str]) -> str:
    """The template at ``key`` with every placeholder replaced by its property value."""
    template = auth.options.get(key)
    if template is None:
        return ""
    if not isinstance(template, str):
        raise _misconfigured(key)
    parts: list[str] = []
    for segment in parse_template(template):
        if isinstance(segment, str):
            parts.append(segment)
        else:
            value = properties.get(segment.name)
            parts.append(value if isinstance(value, str) else "")
    return "".join(parts)


def secret(auth: WebhookAuth, key: str, properties: Mapping[str, str]) -> str:
    """A rendered secret, which must not be empty."""
    value = render(auth, key, properties)
    if not value:
        raise WebhookAuthFailed("no secret configured")
    return value


def text(auth: WebhookAuth, key: str, default: str | None = None) -> str:
    """A literal string option (a header name, a prefix); ``default`` when absent."""
    value = auth.options.get(key, default)
    if not isinstance(value, str):
        raise _misconfigured(key)
    return value


def choice(auth: WebhookAuth, key: str, allowed: Collection[str], default: str) -> str:
    """An enumerated option, one of ``allowed``."""
    value = text(auth, key, default)
    if value not in allowed:
        raise _misconfigured(key)
    return value


def flag(auth: WebhookAuth, key: str) -> bool:
    """A boolean option, false when absent."""
    value = auth.options.get(key, False)
    if not isinstance(value, bool):
        raise _misconfigured(key)
    return value


def tolerance(auth: WebhookAuth) -> float:
    """``tolerance_s``: how far a signed timestamp may be from now, in seconds (default 300)."""
    value = auth.options.get("tolerance_s", DEFAULT_TOLERANCE_S)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _misconfigured("tolerance_s")
    if not math.isfinite(value) or value < 0:
        raise _misconfigured("tolerance_s")
    return float(value)


def _misconfigured(key: str) -> WebhookAuthFailed:
    return WebhookAuthFailed(f"the WebhookAuth option {key} is not valid")
