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

import itertools
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl

from ..engine import RenderedRequest
from ..outbound import OutboundError, ProviderResponse
from ..security.secrets import MASK, SecretMask
from ..store import ExchangeKind, InstallationRecord, ProviderExchange

__all__ = [
    "BODY_CAP",
    "exchange_of",
    "masked_body",
    "masked_headers",
    "masked_texts",
    "token_answer_values",
]

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
    pairs = list(_pairs(headers))
    values = masked_texts(mask, [value for _, value in pairs])
    return tuple(
        (name, MASK if name.lower() in _CREDENTIAL_HEADERS else value)
        for (name, _), value in zip(pairs, values, strict=True)
    )


def masked_texts(mask: SecretMask, texts: list[str]) -> list[str]:
    """Each of ``texts`` masked whole. One pass of the mask over them all, joined (a mask costs
    a search per form of each secret for each text it is given: a webhook's headers, query and
    reason took nine passes); each on its own when one holds the separator or a secret spans
    two."""
    if not mask.values or not texts:
        return texts
    if not any(_SEPARATOR in text for text in texts):
        masked = mask(_SEPARATOR.join(texts)).split(_SEPARATOR)
        if len(masked) == len(texts):
            return masked
    return [mask(text) for text in texts]


def masked_body(
    mask: SecretMask, body: bytes | str | None, *, truncated: bool = False, cap: int = BODY_CAP
) -> str:
    """At most ``cap`` characters of ``body`` (bytes read as UTF-8), masked before being cut;
    ``truncated`` says ``body`` is itself only the start of what was sent. A cut body ends
    with ``…``."""
    text, more = _window(mask, body, truncated, cap)
    return _capped(mask(text, cut=more), more, cap)


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
    answer_headers: Iterable[tuple[str, str]] = ()
    answer_body: bytes | None = None
    truncated = False
    if isinstance(answer, OutboundError):
        status, error = 0, f"{type(answer).__name__}: {answer}"
    else:
        status, error, answer_headers = answer.status, "", answer.headers.items()
        answer_body, truncated = answer.body, answer.truncated
    # Credential headers' values are kept as MASK whole: only the others' values are masked.
    names: list[str] = []
    values: list[str] = []
    credentials: list[int] = []
    for name, value in itertools.chain(request.headers, answer_headers):
        if name.lower() in _CREDENTIAL_HEADERS:
            credentials.append(len(names))
            value = ""
        names.append(name)
        values.append(value)
    sent, sent_more = _window(mask, request.body, False, BODY_CAP)
    got, got_more = _window(mask, answer_body, truncated, BODY_CAP)
    # One pass of the mask over every text at once (masked_texts); a body cut short is masked
    # as the start it is, on its own.
    if sent_more or got_more:
        masked = [
            mask(request.url),
            mask(error),
            mask(sent, cut=sent_more),
            mask(got, cut=got_more),
            *masked_texts(mask, values),
        ]
    else:
        masked = masked_texts(mask, [request.url, error, sent, got, *values])
    for index in credentials:
        masked[4 + index] = MASK
    pairs = list(zip(names, masked[4:], strict=True))
    split = len(request.headers)
    return ProviderExchange(
        id=_exchange_id(started_at),
        org_id=installation.org_id,
        installation_id=installation.id,
        integration_id=installation.integration_id,
        message_id=message_id,
        kind=kind,
        method=request.method.upper(),
        url=masked[0],
        request_headers=tuple(pairs[:split]),
        request_body=_capped(masked[2], sent_more, BODY_CAP),
        status=status,
        response_headers=tuple(pairs[split:]),
        response_body=_capped(masked[3], got_more, BODY_CAP),
        started_at=started_at,
        duration_ms=round(duration_s * 1000, 3),
        error=masked[1],
    )


_SEPARATOR: Final = "\x00"


class _IdParts:
    """This process's part of every exchange id and its running count: unique without asking
    the system for random bytes per exchange (a system call on the send path); made again in a
    forked child, which must not repeat its parent's."""

    def __init__(self) -> None:
        self.process = ""
        self.count = itertools.count()
        self.renew()

    def renew(self) -> None:
        self.process = os.urandom(4).hex()
        self.count = itertools.count()


_ID_PARTS = _IdParts()
os.register_at_fork(after_in_child=_ID_PARTS.renew)


def _exchange_id(started_at: datetime) -> str:
    """Ordered by time (the store's index takes it at its end), then unique by this process's
    random part and its count (16 hex digits, as 8 random bytes once were)."""
    count = next(_ID_PARTS.count) & 0xFFFFFFFF
    return f"{int(started_at.timestamp() * 1_000_000):015x}{_ID_PARTS.process}{count:08x}"


def _pairs(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def _window(
    mask: SecretMask, body: bytes | str | None, truncated: bool, cap: int
) -> tuple[str, bool]:
    """The start of ``body`` to mask, enough for ``cap`` characters even where secrets shrink
    to :data:`MASK`, and whether there is more after it."""
    if not body:
        return "", False
    window = cap + 4 * mask.longest
    start = body[:window]
    text = start.decode("utf-8", "replace") if isinstance(start, bytes) else start
    return text, truncated or len(body) > window


def _capped(masked: str, more: bool, cap: int) -> str:
    if len(masked) > cap:
        return masked[:cap] + _CUT
    return masked + _CUT if more else masked


#: The fields of a token endpoint's answer that hold tokens (RFC 6749 §5.1, OpenID Connect).
_TOKEN_FIELDS: Final = ("access_token", "refresh_token", "id_token")


def token_answer_values(body: bytes) -> tuple[str, ...]:
    """The tokens a token endpoint's answer carries (JSON, or a form as some providers answer),
    to be masked in its exchange: they are not known to any mask before it."""
    text = body.decode("utf-8", "replace")
    try:
        fields = json.loads(text)
    except ValueError:
        fields = dict(parse_qsl(text))
    if not isinstance(fields, dict):
        return ()
    return tuple(v for k in _TOKEN_FIELDS if isinstance(v := fields.get(k), str))
