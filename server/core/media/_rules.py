"""What applies to one inbound message's files (docs/media.md): its definition's ``Media``
(docs/format.md, "Media") — the credentials and the hosts they may go to, the caps, the types —
under the gateway's own caps and default types; and (ext) how a file given as an id is found
(docs/format.md, "Media given as an id"): the definition's resolve request, rendered by the
engine with the installation's properties and the id and sent through the outbound client with
the definition's auth, as :mod:`server.oauth._request_tokens` sends a token request."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from ...engine import (
    MEDIA_ID,
    Definition,
    MediaResolve,
    RenderedRequest,
    RenderError,
    content_type_allowed,
    download_url,
    media_caps,
    media_credentials,
    media_needs_bearer_token,
    read_resolve_answer,
    render_request,
)
from ...media import MMS_CONTENT_TYPES
from ...oauth import installation_secrets
from ...outbound import OutboundClient, OutboundError, PolicyRefused, ProviderResponse
from ...security.secrets import SecretMask
from ...store import ExchangeKind, InstallationRecord, NewEvent
from .._catalog import IntegrationCatalog
from .._exchange_log import ExchangeLog
from .._installations import InstallationDirectory
from .._provider_credentials import InstallationAuth
from ._fetcher import FetchRules, ResolveFailed

__all__ = ["MediaRulesOf"]

_REASON_LIMIT = 200
_Keep = Callable[[RenderedRequest, ProviderResponse | OutboundError, datetime, float], None]


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
        outbound: OutboundClient | None = None,
        resolve_timeout_s: float = 30.0,
    ) -> None:
        self._outbound = outbound
        self._resolve_timeout_s = resolve_timeout_s
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

        def mask() -> SecretMask:
            """The installation's secrets and tokens (a bearer token travels in Authorization,
            masked whole)."""
            known = auth.known_tokens(installation.id) if auth is not None else ()
            values = installations.property_values(installation)
            return installation_secrets(definition, values, tokens=known)

        def keep(
            request: RenderedRequest,
            answer: ProviderResponse | OutboundError,
            started_at: datetime,
            duration_s: float,
        ) -> None:
            """The fetch kept in the exchange log, masked with the installation's secrets."""
            if log is not None and log.enabled:
                kind = ExchangeKind.MEDIA_FETCH
                log.keep(mask(), installation, kind, request, answer, (started_at, duration_s))

        spec = definition.media.resolve

        async def resolve(media_id: str) -> str:
            assert spec is not None
            return await self._resolve(spec, definition, installation, media_id, keep, mask)

        return FetchRules(
            max_item_bytes=item,
            max_message_bytes=message,
            allowed=lambda content_type: content_type_allowed(content_type, patterns),
            headers_for=headers_for,
            keep=keep if log is not None and log.enabled else None,
            resolve=resolve if spec is not None else None,
            mask=lambda text: mask()(text),
        )

    async def _resolve(
        self,
        spec: MediaResolve,
        definition: Definition,
        installation: InstallationRecord,
        media_id: str,
        keep: _Keep,
        mask: Callable[[], SecretMask],
    ) -> str:
        """(ext) The URL of the file ``media_id`` names: the resolve request made (kept in the
        exchange log as a media fetch) and read, then ``download`` rendered. Every failure is a
        :class:`ResolveFailed` whose text is masked and names no URL."""
        values = self._installations.property_values(installation)
        captures: Mapping[str, str] = {}
        if spec.request is not None:
            bearer = None
            if self._auth is not None:
                bearer = await self._auth.bearer_token(installation, definition)
            try:
                rendered = render_request(
                    definition, spec.request, {**values, MEDIA_ID: media_id}, bearer_token=bearer
                )
            except RenderError as exc:
                raise ResolveFailed(
                    f"the resolve request cannot be built: {exc}", transient=False
                ) from None
            if self._outbound is None:
                raise ResolveFailed("no outbound client to resolve a media id", transient=False)
            started_at, started = datetime.now(UTC), time.perf_counter()
            try:
                answer = await self._outbound.send(
                    rendered, timeout=self._resolve_timeout_s, integration=definition.id
                )
            except OutboundError as exc:
                keep(rendered, exc, started_at, time.perf_counter() - started)
                why = mask()(f"the resolve request failed: {exc}")
                raise ResolveFailed(why, transient=not isinstance(exc, PolicyRefused)) from None
            keep(rendered, answer, started_at, time.perf_counter() - started)
            content_type = answer.headers.get("content-type")
            read = read_resolve_answer(spec, answer.status, answer.body, content_type)
            if read.verdict != "resolved":
                reason = mask().excerpt(read.reason, _REASON_LIMIT) or "no reason given"
                raise ResolveFailed(
                    f"the provider did not resolve the media id: {reason}",
                    transient=read.verdict == "unavailable",
                )
            captures = read.captures
        try:
            return download_url(spec, values, media_id, captures)
        except RenderError as exc:
            raise ResolveFailed(f"the file's URL cannot be made: {exc}", transient=False) from None
