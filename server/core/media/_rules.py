"""What applies to one inbound message's files (docs/media.md): its definition's ``Media``
(docs/format.md, "Media") — the credentials and the hosts they may go to, the caps, the types —
under the gateway's own caps and default types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from ...engine import (
    RenderedRequest,
    content_type_allowed,
    media_caps,
    media_credentials,
    media_needs_bearer_token,
)
from ...media import MMS_CONTENT_TYPES
from ...oauth import installation_secrets
from ...outbound import OutboundError, ProviderResponse
from ...store import ExchangeKind, NewEvent
from .._catalog import IntegrationCatalog
from .._exchange_log import ExchangeLog
from .._installations import InstallationDirectory
from .._provider_credentials import InstallationAuth
from ._fetcher import FetchRules

__all__ = ["MediaRulesOf"]


class MediaRulesOf:
    """The :data:`~server.core.media.RulesFor` of the service."""

    def __init__(
        self,
        *,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        auth: InstallationAuth | None,
        max_item_bytes: int,
        max_message_bytes: int,
        exchanges: ExchangeLog | None = None,
    ) -> None:
        self._exchanges = exchanges
        self._catalog = catalog
        self._installations = installations
        self._auth = auth
        self._max_item_bytes = max_item_bytes
        self._max_message_bytes = max_message_bytes

    def allowed_types(self, patterns: Sequence[str] | None) -> Sequence[str]:
        return MMS_CONTENT_TYPES if patterns is None else patterns

    async def allowed_for(self, integration_id: str) -> Sequence[str]:
        """The types an integration takes (an upload meant for it is checked against them)."""
        definition = (await self._catalog.get(integration_id)).definition
        return self.allowed_types(definition.media.content_types)

    async def __call__(self, event: NewEvent) -> FetchRules:
        integration = await self._catalog.get(event.integration_id)
        definition = integration.definition
        installation = await self._installations.get(event.installation_id)
        item, message = media_caps(
            definition.media,
            max_item_bytes=self._max_item_bytes,
            max_message_bytes=self._max_message_bytes,
        )
        patterns = self.allowed_types(definition.media.content_types)
        installations = self._installations
        auth = self._auth

        async def headers_for(url: str) -> Mapping[str, str]:
            values = installations.property_values(installation)
            bearer = None
            if media_needs_bearer_token(definition) and auth is not None:
                bearer = await auth.bearer_token(installation, definition)
            return dict(media_credentials(definition, url, values, bearer_token=bearer))

        log = self._exchanges

        def keep(
            request: RenderedRequest,
            answer: ProviderResponse | OutboundError,
            started_at: datetime,
            duration_s: float,
        ) -> None:
            """The fetch kept in the exchange log, masked with the installation's secrets and
            tokens (a bearer token travels in Authorization, masked whole)."""
            assert log is not None
            known = auth.oauth.known_tokens(installation.id) if auth is not None else ()
            values = installations.property_values(installation)
            mask = installation_secrets(definition, values, tokens=known)
            kind = ExchangeKind.MEDIA_FETCH
            log.keep(mask, installation, kind, request, answer, (started_at, duration_s))

        return FetchRules(
            max_item_bytes=item,
            max_message_bytes=message,
            allowed=lambda content_type: content_type_allowed(content_type, patterns),
            headers_for=headers_for,
            keep=keep if log is not None and log.enabled else None,
        )
