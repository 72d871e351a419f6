"""The media parts of the service, built together (docs/media.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ...media import BlobStore, MediaSigner
from ...metrics import NO_METRICS, Metrics
from ...outbound import OutboundClient
from ...security.secrets import SecretBox
from ...store import Store
from .._catalog import IntegrationCatalog
from .._events import EventHub
from .._exchange_log import ExchangeLog
from .._installations import InstallationDirectory
from .._provider_credentials import InstallationAuth
from ._fetcher import MediaFetcher
from ._library import MediaLibrary
from ._rules import MediaRulesOf

__all__ = ["Media", "build_media"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Media:
    """The blob store, the stored files, and the inbound fetcher (None when fetching is off)."""

    blobs: BlobStore
    library: MediaLibrary
    fetcher: MediaFetcher | None
    rules: MediaRulesOf

    async def start(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.start()

    async def aclose(self, grace_s: float = 0.0) -> None:
        if self.fetcher is not None:
            await self.fetcher.aclose(grace_s)
        await self.blobs.aclose()


def build_media(
    *,
    store: Store,
    blobs: BlobStore,
    outbound: OutboundClient,
    hub: EventHub,
    catalog: IntegrationCatalog,
    installations: InstallationDirectory,
    auth: InstallationAuth | None,
    secret_box: SecretBox,
    public_url: str,
    fetch: bool,
    wait_s: float,
    fetch_timeout_s: float,
    max_item_bytes: int,
    max_message_bytes: int,
    url_ttl_s: float,
    exchanges: ExchangeLog | None = None,
    metrics: Metrics = NO_METRICS,
) -> Media:
    rules = MediaRulesOf(
        catalog=catalog,
        installations=installations,
        auth=auth,
        max_item_bytes=max_item_bytes,
        max_message_bytes=max_message_bytes,
        exchanges=exchanges,
        outbound=outbound,
        resolve_timeout_s=fetch_timeout_s,
    )
    library = MediaLibrary(
        store=store,
        blobs=blobs,
        signer=MediaSigner.from_box(secret_box),
        public_url=public_url,
        url_ttl_s=url_ttl_s,
        max_item_bytes=max_item_bytes,
    )
    fetcher = (
        MediaFetcher(
            store=store,
            blobs=blobs,
            outbound=outbound,
            hub=hub,
            rules_for=rules,
            owner=f"media-{uuid.uuid4().hex[:12]}",
            wait_s=wait_s,
            fetch_timeout_s=fetch_timeout_s,
            metrics=metrics,
        )
        if fetch
        else None
    )
    return Media(blobs=blobs, library=library, fetcher=fetcher, rules=rules)
