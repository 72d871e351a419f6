"""A provider exchange as it is kept (docs/operations.md, "Provider exchanges"): built from the
request made and the answer (or the failure) it met, and masked on the spot — before the record
exists — with the installation's :class:`~server.security.secrets.SecretMask`.

What is masked: the values of credential headers (``Authorization``, ``Proxy-Authorization``,
``Cookie``, ``Set-Cookie`` and the usual API-key headers) whole; every known secret value — the
installation's secret properties, its auth, the bearer token the call carried — wherever else it
appears, in the URL (a key in the query), any other header and both bodies, in each form the mask
knows (percent-encoded, JSON-escaped, base64 …). Bodies are capped at :data:`BODY_CAP` characters,
masked before they are cut (server/security/secrets/_mask.py, "Mask before cutting").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final

from ..engine import RenderedRequest
from ..outbound import OutboundError, ProviderResponse
from ..security.secrets import MASK, SecretMask
from ..store import ExchangeKind, InstallationRecord, ProviderExchange

__all__ = ["BODY_CAP", "exchange_of", "masked_body", "masked_headers"]

#: The most of a body kept, characters.
BODY_CAP: Final = 8192
#: Appended to a body that was cut.
_CUT: Final = "…"
#: Headers whose value is a credential, masked whole (lower case).
_CREDENTIAL_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
    }
)


def masked_headers(
    mask: SecretMask, headers: Iterable[tuple[str, str]] | Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """``headers`` in order, credential headers' values as :data:`MASK`, secrets masked in the
    others."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple(
        (name, MASK if name.lower() in _CREDENTIAL_HEADERS else mask(value))
        for name, value in pairs
    )


def masked_body(
    mask: SecretMask, body: bytes | str | None, *, truncated: bool = False, cap: int = BODY_CAP
) -> str:
    """At most ``cap`` characters of ``body`` (bytes read as UTF-8), masked before being cut;
    ``truncated`` says ``body`` is itself only the start of what was sent. A cut body ends
    with ``…``."""
    if not body:
        return ""
    window = cap + 4 * mask.longest  # enough for the cap even where secrets shrink to MASK
    start = body[:window]
    text = start.decode("utf-8", "replace") if isinstance(start, bytes) else start
    more = truncated or len(body) > window
    masked = mask(text, cut=more)
    if len(masked) > cap:
        return masked[:cap] + _CUT
    return masked + _CUT if more else masked


def exchange_of(
    mask: SecretMask,
    *,
    installation: InstallationRecord,
    kind: ExchangeKind,
    message_id: str | None,
    request: RenderedRequest,
    answer: ProviderResponse | OutboundError,
    started_at: datetime,
    duration_s: float,
) -> ProviderExchange:
    """The exchange of ``request`` and its ``answer`` (an error when none came) to keep, masked
    with ``mask``."""
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(answer, OutboundError):
        status, body = 0, ""
        error = mask(f"{type(answer).__name__}: {answer}")
    else:
        status, error = answer.status, ""
        headers = masked_headers(mask, answer.headers)
        body = masked_body(mask, answer.body, truncated=answer.truncated)
    return ProviderExchange(
        id=os.urandom(12).hex(),
        org_id=installation.org_id,
        installation_id=installation.id,
        integration_id=installation.integration_id,
        message_id=message_id,
        kind=kind,
        method=request.method.upper(),
        url=mask(request.url),
        request_headers=masked_headers(mask, request.headers),
        request_body=masked_body(mask, request.body),
        status=status,
        response_headers=headers,
        response_body=body,
        started_at=started_at,
        duration_ms=round(duration_s * 1000, 3),
        error=error,
    )
