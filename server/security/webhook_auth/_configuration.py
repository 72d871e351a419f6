"""(ext) Whether an installation's property values give a WebhookAuth a usable key, checked when
the installation is saved (docs/format.md, "WebhookAuth"), so that a pasted key that is not one
is refused there, with the property's name, rather than failing every webhook later."""

from __future__ import annotations

from collections.abc import Mapping

from server.engine import Placeholder, WebhookAuth, parse_template
from server.engine._rsa_keys import RsaKeyError, rsa_public_key

from ._options import render

__all__ = ["key_problems"]


def key_problems(auth: WebhookAuth | None, properties: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(property, reason)`` for an ``rsa`` ``public_key`` whose value is not a usable RSA
    key; empty when there is nothing to say (a value left empty is the required-value check's)."""
    if auth is None or auth.type != "rsa":
        return []
    template = auth.options.get("public_key")
    if not isinstance(template, str):
        return []
    names = [s.name for s in parse_template(template) if isinstance(s, Placeholder)]
    value = render(auth, "public_key", properties)
    if not names or not value.strip():
        return []
    try:
        rsa_public_key(value)
    except RsaKeyError as error:
        return [(names[0], f"{error}")]
    return []
