"""The provider exchange log's records (docs/operations.md, "Provider exchanges"): every HTTP
exchange the gateway made with a provider — a send, a retry, a Subscribe call, a token request —
with its timing and its request and answer, as integration authors read them.

The store keeps what it is given: a :class:`ProviderExchange` arrives already masked (every secret
replaced by ``***``) and its bodies already capped (``server/core/_exchanges.py``); nothing
secret ever reaches a row.
"""

from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring as _string
from typing import Any, Final

from ._rows import Rows

__all__ = [
    "EXCHANGE_COLUMNS",
    "ExchangeKind",
    "ProviderExchange",
    "exchange_params",
    "exchange_record",
]


class ExchangeKind(enum.StrEnum):
    """What an exchange was made for."""

    SEND = "send"
    """A message's first attempt."""
    RETRY = "retry"
    """A later attempt of a message."""
    SUBSCRIBE = "subscribe"
    """A Subscribe call of an installation (docs/format.md, "Subscribe")."""
    OAUTH_TOKEN = "oauth_token"  # noqa: S105 - a kind, not a secret
    """A token request of an installation's OAuth2 grant (docs/format.md, "Authentication")."""
    MEDIA_FETCH = "media_fetch"
    """A fetch of an inbound message's file (docs/media.md)."""
    SIGNAL = "signal"
    """(ext) A conversation signal: SendTyping or MarkRead (docs/format.md, "Conversation
    signals")."""
    CONTACT_LOOKUP = "contact_lookup"
    """(ext) A lookup of an inbound message's sender's name (docs/format.md, "Contact names")."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderExchange:
    """One HTTP exchange with a provider, masked. ``message_id`` is ``None`` for an exchange made
    for no message (Subscribe, a token); ``status`` is 0 when no answer came (``error`` says
    why); ``headers`` keep their order and repeats."""

    id: str
    org_id: str
    installation_id: str
    integration_id: str
    message_id: str | None
    kind: ExchangeKind
    method: str
    url: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: str
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: str
    started_at: datetime
    duration_ms: float
    error: str = ""


# ---------------------------------------------------------------------------------------------
# Rows (as :mod:`server.store._rows` does for the other records; this order is every row's)

EXCHANGE_COLUMNS: Final = (
    "id",
    "org_id",
    "installation_id",
    "integration_id",
    "message_id",
    "kind",
    "method",
    "url",
    "request_headers_json",
    "request_body",
    "status",
    "response_headers_json",
    "response_body",
    "started_at",
    "duration_ms",
    "error",
)


@functools.lru_cache(maxsize=256)
def _headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    """The store's compact JSON of ``headers``, each pair as a JSON array: the text
    ``_rows._json`` writes (tests/unit/test_store_rows.py checks), made from the strings the
    ``json`` module's own encoder writes — without the encoder it builds per call — and kept
    for the next exchange with the same headers (a send's request headers are the same every
    time)."""
    return "[" + ",".join([f"[{_string(name)},{_string(value)}]" for name, value in headers]) + "]"


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


def _kind(kind: ExchangeKind) -> str:
    return kind.value if type(kind) is ExchangeKind else ExchangeKind(kind).value


def exchange_params(rows: Rows[Any], record: ProviderExchange) -> tuple[Any, ...]:
    return (
        record.id,
        record.org_id,
        record.installation_id,
        record.integration_id,
        record.message_id,
        _kind(record.kind),
        record.method,
        record.url,
        _headers_json(record.request_headers),
        record.request_body,
        record.status,
        _headers_json(record.response_headers),
        record.response_body,
        rows.time_param(record.started_at),
        record.duration_ms,
        record.error,
    )


def exchange_record(rows: Rows[Any], row: Any) -> ProviderExchange:
    return ProviderExchange(
        id=row[0],
        org_id=row[1],
        installation_id=row[2],
        integration_id=row[3],
        message_id=row[4],
        kind=ExchangeKind(row[5]),
        method=row[6],
        url=row[7],
        request_headers=_headers(row[8]),
        request_body=row[9],
        status=int(row[10]),
        response_headers=_headers(row[11]),
        response_body=row[12],
        started_at=rows.time_value(row[13]),
        duration_ms=float(row[14]),
        error=row[15],
    )
