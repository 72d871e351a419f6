"""A webhook request as it is kept (docs/operations.md, "Webhook requests"): masked before the
record exists, with what the gateway answered and how long it took.

Like a provider exchange (``core/_exchanges.py``): credential headers (``Authorization``,
``Cookie``, the usual API-key headers) and the header a ``token`` WebhookAuth reads are masked
whole; every known secret of the installation — its secret properties, its auth, its
WebhookAuth's secrets — is masked wherever else it appears: the query, the other headers and
the body. The body is kept whole (it is what :meth:`Ingestor.replay` matches again); masking
changes only a secret's own bytes, which a model has no reason to capture. A request whose
installation is not known (refused through the per-integration URL) has only its credential
headers masked: without an installation there are no secrets to look for. The answer's body is
capped at ``BODY_CAP`` characters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ...engine import Definition
from ...errors import NotFound
from ...oauth import installation_secrets
from ...security.secrets import MASK, SecretMask
from ...security.webhook_auth import secret_header, secret_values
from ...store import InstallationRecord, WebhookOutcome, WebhookRequestRecord
from .._capped_cache import CappedCache, FreshCache
from .._exchanges import BODY_CAP, masked_body, masked_headers, masked_texts
from .._installations import InstallationDirectory

__all__ = ["KeptRequest", "WebhookMasks"]

_NO_SECRETS: Final = SecretMask()


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptRequest:
    """A webhook request as it came to the core, before it is masked and kept."""

    id: str
    received_at: datetime
    integration_id: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str
    started: float  # time.perf_counter() at receipt

    def record(
        self,
        mask: SecretMask,
        definition: Definition,
        *,
        installation_id: str | None,
        outcome: WebhookOutcome,
        reason: str,
        answer: tuple[int, bytes],
    ) -> WebhookRequestRecord:
        """The record to keep, masked with ``mask``; ``answer`` is the status and body the
        gateway answers, and the time from receipt to now is kept as its duration."""
        status, answer_body = answer
        query, reason = masked_texts(mask, [self.query, reason])
        headers = masked_headers(mask, self.headers)
        auth = definition.webhook_auth
        token_header = secret_header(auth) if auth is not None else None
        if token_header is not None:
            headers = tuple((n, MASK if n.lower() == token_header else v) for n, v in headers)
        return WebhookRequestRecord(
            id=self.id,
            received_at=self.received_at,
            integration_id=self.integration_id,
            installation_id=installation_id,
            method=self.method,
            path=self.path,
            query=query,
            headers=headers,
            body=_masked(mask, self.body),
            content_type=self.content_type,
            outcome=outcome,
            reason=reason,
            answer_status=status,
            answer_body=masked_body(mask, answer_body, cap=BODY_CAP),
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
        )


class WebhookMasks:
    """The mask of each installation's secrets: kept while the installation is unchanged, and
    for an installation known only by its id (the owner of a routed event) re-read after
    ``ttl_s`` seconds, so that a webhook does not cost a store read."""

    def __init__(
        self, installations: InstallationDirectory, *, ttl_s: float = 2.0, max_entries: int = 10_000
    ) -> None:
        self._installations = installations
        self._masks: CappedCache[tuple[str, datetime], SecretMask] = CappedCache(max_entries)
        self._by_id: FreshCache[str, SecretMask] = FreshCache(ttl_s, max_entries)

    def of(self, definition: Definition, installation: InstallationRecord | None) -> SecretMask:
        """The mask of ``installation``'s secrets (none without an installation)."""
        if installation is None:
            return _NO_SECRETS
        key = (installation.id, installation.updated_at)
        mask = self._masks.get(key)
        if mask is None:
            values = self._installations.property_values(installation)
            auth = definition.webhook_auth
            extra = secret_values(auth, values) if auth is not None else ()
            mask = self._masks.put(key, installation_secrets(definition, values, tokens=extra))
        return mask

    async def of_id(self, definition: Definition, installation_id: str | None) -> SecretMask:
        """The mask of the secrets of the installation ``installation_id``."""
        if installation_id is None:
            return _NO_SECRETS
        cached = self._by_id.fresh(installation_id)
        if cached is not None:
            return cached
        try:
            record = await self._installations.get(installation_id)
        except NotFound:
            return _NO_SECRETS
        return self._by_id.keep(installation_id, self.of(definition, record))


def _masked(mask: SecretMask, body: bytes) -> bytes:
    """``body`` with every secret masked, every other byte as it was (bytes that are not UTF-8
    pass through as surrogate escapes)."""
    if not mask.values or not body:
        return body
    text = body.decode("utf-8", "surrogateescape")
    masked = mask(text)
    return body if masked == text else masked.encode("utf-8", "surrogateescape")
