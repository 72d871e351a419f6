"""Building and running the service.

:func:`build_server` assembles everything from one :class:`Settings` object and binds the gRPC
port (port 0 picks a free one, for tests) without serving yet; :meth:`GatewayServer.start` serves
and :meth:`GatewayServer.stop` drains and releases everything. :func:`run` is ``msgbridge serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc, ingest_pb2, ingest_pb2_grpc

from ._event_loop import running_loop_name
from ._listen import ListenError, check_free, listen_socket
from .api import (
    DeliveryStreams,
    GatewayServicer,
    IngestServicer,
    MediaRpcs,
    add_lenient_servicer,
)
from .config import Settings, SettingsError
from .core import (
    REQUEST_TOKEN_KEYS,
    AuthorizationStatus,
    ContactNames,
    DeliveryQueue,
    EventHub,
    ExchangeLog,
    HeldReceipts,
    Ingestor,
    InstallationAuth,
    InstallationDirectory,
    IntegrationCatalog,
    OAuthCallback,
    ProviderAttempt,
    Retention,
    RetentionKeeper,
    RetryPolicy,
    StoreStateStore,
    StoreTokenVault,
    SubscriptionKeeper,
    build_delivery,
    token_exchanges,
)
from .core.ingest import LOOKUP_TIMEOUT_S
from .core.media import Media, MediaLibrary, build_media
from .engine import MAX_DEFINITION_BYTES
from .media import BlobStore, FileBlobStore, S3BlobStore
from .metrics import (
    NO_METRICS,
    Metrics,
    MetricsServer,
    PrometheusMetrics,
    StoreGauges,
    build_metrics_app,
)
from .oauth import OAuthTokens, OutboundTransport, RequestTokens
from .outbound import (
    OutboundClient,
    OutboundPolicy,
    PolicyRefused,
    StandIn,
    check_stand_in,
    parse_stand_ins,
)
from .security.api_access import ApiAccess
from .security.secrets import SecretBox
from .sidecar import (
    OAUTH_CALLBACK_PATH,
    MediaHead,
    SidecarServer,
    build_sidecar_app,
    split_host_port,
)
from .store import MediaRecord, PostgresStore, SqliteStore, Store

__all__ = ["Companion", "GatewayServer", "build_server", "max_request_bytes", "open_store", "run"]

logger = logging.getLogger(__name__)

GATEWAY_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name
INGEST_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name


# Room in a request for what is not its body or definition: a webhook delivery's headers
# (the sidecar takes at most 100 of 8,190 bytes each), its URL, the message's own fields.
_REQUEST_OVERHEAD_BYTES = 1 << 20


def max_request_bytes(settings: Settings) -> int:
    """The largest request the gRPC server receives: the largest webhook delivery (whose body a
    sidecar, in-process or not, limits to ``webhook_max_body``) or definition, with headroom.

    Every request is held whole in memory before it is refused, so the limit is what is needed,
    not more: eight requests at once of the old 8 MiB limit took the server past 400 MB."""
    return max(settings.webhook_max_body, MAX_DEFINITION_BYTES) + _REQUEST_OVERHEAD_BYTES


def open_store(settings: Settings) -> Store:
    """The store the database URL names (not opened yet): SQLite, or PostgreSQL for replicas."""
    url = settings.effective_database_url
    if url.startswith("sqlite:///"):
        return SqliteStore.from_file(Path(url.removeprefix("sqlite:///")))
    return PostgresStore(
        url, min_size=min(2, settings.database_pool_size), max_size=settings.database_pool_size
    )


#: Allocations (less deallocations) of tracked objects between two collections of the youngest
#: generation; Python's default is 700. A send allocates a few hundred, so at 700 the collector
#: ran every other send and walked what the 64 sends in flight hold each time: 6 % of the event
#: loop thread under load in a profile (py-spy --native). At 20,000 it runs every few dozen sends
#: for about the same walk (what is alive is what is in flight, not what was allocated); cyclic
#: garbage waits that much longer, a bound of objects, not of bytes held by one.
YOUNG_COLLECTION_THRESHOLD = 20_000


@dataclass(kw_only=True)
class GatewayServer:
    """A built service: the gRPC server and what it owns. Start it, then stop it."""

    settings: Settings
    grpc_server: grpc.aio.Server
    grpc_port: int
    store: Store
    outbound: OutboundClient
    health: health.aio.HealthServicer
    catalog: IntegrationCatalog
    installations: InstallationDirectory
    hub: EventHub
    ingestor: Ingestor
    held_receipts: HeldReceipts
    subscriptions: SubscriptionKeeper
    retention: RetentionKeeper
    delivery: DeliveryQueue
    media: Media
    # The separate sidecars' long-lived calls, ended first when draining.
    delivery_streams: DeliveryStreams
    contact_names: ContactNames | None = None
    exchanges: ExchangeLog | None = None
    http_port: int | None = None
    # The sidecar's address, bound by build_server (server/_listen.py); served by start().
    http_socket: socket.socket | None = field(default=None, repr=False)
    _sidecar: SidecarServer | None = field(default=None, repr=False)
    # Metrics (docs/operations.md, "Metrics"): NO_METRICS unless metrics_listen is set, whose
    # socket build_server binds and start() serves.
    metrics: Metrics = NO_METRICS
    metrics_socket: socket.socket | None = field(default=None, repr=False)
    metrics_port: int | None = None
    _metrics_server: MetricsServer | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Serve gRPC and, when configured, the webhook sidecar in-process."""
        await self.grpc_server.start()
        if self.settings.sidecar:
            app = build_sidecar_app(
                self.ingestor,
                media=LibraryMediaReader(self.media.library),
                public_url=self.settings.effective_public_url,
                max_body=self.settings.webhook_max_body,
                request_timeout_s=self.settings.webhook_timeout_s,
            )
            host, port = split_host_port(self.settings.http_listen)
            self._sidecar = SidecarServer(app, host, port, sock=self.http_socket)
            self.http_socket = None  # the sidecar's now
            await self._sidecar.start()
            self.http_port = self._sidecar.port
            logger.info("webhook sidecar serving", extra={"port": self.http_port})
        if self.metrics_socket is not None and isinstance(self.metrics, PrometheusMetrics):
            gauges = StoreGauges(self.store, self.metrics)
            self._metrics_server = MetricsServer(
                build_metrics_app(self.metrics, gauges), self.metrics_socket
            )
            self.metrics_socket = None  # the metrics server's now
            await self._metrics_server.start()
            self.metrics_port = self._metrics_server.port
        if isinstance(self.store, PostgresStore):
            # Other replicas' webhooks wake this one's subscribers (the table stays the truth).
            await self.store.listen_events(self.hub.notify)
        if self.exchanges is not None:
            await self.exchanges.start()
        await self.held_receipts.start()
        await self.delivery.start()
        await self.media.start()
        await self.retention.start()
        await self.subscriptions.start()
        for service in ("", GATEWAY_SERVICE, INGEST_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        # What start-up made (modules, descriptors, the loaded definitions) lives as long as the
        # process: out of the collector's sight, full collections stay short (a pause of tens of
        # milliseconds otherwise shows in the webhook path's p99).
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
        logger.info(
            "gRPC API serving", extra={"port": self.grpc_port, "event_loop": running_loop_name()}
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Drain, then release everything (what SIGTERM does).

        Health turns NOT_SERVING at once (a health Watch hears it before anything else
        happens); the event streams end, so that their subscribers resume elsewhere from their
        cursor, as do separate sidecars' delivery calls once what they brought is stored (the
        sidecars send the rest elsewhere); new calls and webhooks are refused from then on,
        while the sends and webhook ingests in flight finish — gRPC calls within ``grace``
        seconds (then they are cancelled), the in-process sidecar's requests within its shutdown
        timeout.
        """
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        self.hub.close()
        self.delivery_streams.close()
        # Stopping the gRPC server refuses new calls at once and waits for those in flight;
        # the sidecar stops listening and finishes its requests meanwhile.
        draining = asyncio.create_task(self.grpc_server.stop(grace))
        if self._sidecar is not None:
            await self._sidecar.aclose()
            self._sidecar = None
        if self.http_socket is not None:  # built, never started
            self.http_socket.close()
            self.http_socket = None
        await draining
        if self._metrics_server is not None:
            await self._metrics_server.aclose()
            self._metrics_server = None
        if self.metrics_socket is not None:  # built, never started
            self.metrics_socket.close()
            self.metrics_socket = None
        # Sends that outlived their callers get what is left of the grace to end.
        await self.delivery.aclose(grace)
        await self.media.aclose(grace)
        if self.contact_names is not None:
            await self.contact_names.aclose()
        await self.subscriptions.aclose()
        await self.retention.aclose()
        await self.held_receipts.aclose()
        if self.exchanges is not None:
            await self.exchanges.aclose()  # what the sends above logged
        await self.outbound.aclose()
        await self.store.aclose()

    async def wait(self) -> None:
        await self.grpc_server.wait_for_termination()


async def build_server(
    settings: Settings, *, shared_ports: bool = False
) -> tuple[GatewayServer, int]:
    """Assemble the service and bind its gRPC port; returns it and the bound port.

    ``shared_ports``: a worker of ``msgbridge serve --workers N``, whose supervisor holds the
    gRPC and webhook ports; it listens on them beside its sibling workers (server/_listen.py).
    """
    access = ApiAccess.from_settings(settings)  # SettingsError before anything is opened
    policy = OutboundPolicy.from_strings(allow=settings.outbound_allow, deny=settings.outbound_deny)
    stand_ins = await _stand_ins(settings, policy)  # SettingsError too
    # The ports first: an address already taken is refused before the data directory, the
    # secret key or the database is made (server/_listen.py); what is made after is undone when
    # building fails.
    server = grpc.aio.server(
        interceptors=access.interceptors(),
        options=[
            ("grpc.max_receive_message_length", max_request_bytes(settings)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # A second server on a port this one holds must fail to start, not share the
            # calls (and split them between two databases); a worker shares its supervisor's.
            ("grpc.so_reuseport", int(shared_ports)),
        ],
    )
    undo = contextlib.AsyncExitStack()
    undo.push_async_callback(server.stop, None)
    try:
        port = _bind_grpc(server, access, settings.grpc_listen, shared=shared_ports)
        http_socket = None
        if settings.sidecar:
            http_socket = listen_socket("http_listen", settings.http_listen, shared=shared_ports)
            undo.callback(http_socket.close)
        metrics_socket = None
        if settings.metrics_listen:
            metrics_socket = listen_socket("metrics_listen", settings.metrics_listen)
            undo.callback(metrics_socket.close)
        if settings.demo:  # started beside the service by `msgbridge serve --demo`
            check_free("demo_provider_listen", settings.demo_provider_listen)
        built = await _assemble(
            settings,
            undo,
            access=access,
            policy=policy,
            stand_ins=stand_ins,
            server=server,
            grpc_port=port,
            http_socket=http_socket,
            metrics_socket=metrics_socket,
        )
    except BaseException:
        await undo.aclose()
        raise
    return built, port


async def _assemble(
    settings: Settings,
    undo: contextlib.AsyncExitStack,
    *,
    access: ApiAccess,
    policy: OutboundPolicy,
    stand_ins: dict[str, StandIn],
    server: grpc.aio.Server,
    grpc_port: int,
    http_socket: socket.socket | None,
    metrics_socket: socket.socket | None = None,
) -> GatewayServer:
    """The service around its bound ports; what it opens is pushed on ``undo``, which
    :func:`build_server` unwinds when a step fails."""
    # One registry for the whole service, given to each part that counts (docs/operations.md).
    metrics = PrometheusMetrics() if metrics_socket is not None else NO_METRICS
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # only its owner's
    key_file = settings.secret_key_file or settings.data_dir / "secret.key"
    secret_box = SecretBox.from_file(key_file)
    store = open_store(settings)
    await store.start()
    undo.push_async_callback(store.aclose)
    outbound = OutboundClient(
        policy=policy,
        max_connections=settings.outbound_connections,
        stand_ins=stand_ins,
        trace_providers=settings.trace_providers,
        metrics=metrics,
    )
    await outbound.start()
    undo.push_async_callback(outbound.aclose)
    catalog = IntegrationCatalog(store, cache_ttl_s=settings.cache_ttl_s)
    installations = InstallationDirectory(
        store=store,
        catalog=catalog,
        secret_box=secret_box,
        public_url=settings.effective_public_url,
        cache_ttl_s=settings.cache_ttl_s,
    )
    exchanges = ExchangeLog(store, enabled=settings.exchange_log)
    oauth = OAuthTokens(
        vault=StoreTokenVault(store, secret_box),
        states=StoreStateStore(store, secret_box),
        transport=OutboundTransport(
            outbound,
            default_timeout_s=settings.provider_timeout_s,
            on_exchange=token_exchanges(exchanges, installations),
        ),
        timeout_s=settings.provider_timeout_s,
        stand_ins=stand_ins,
        metrics=metrics,
    )
    auth = InstallationAuth(
        oauth=oauth,
        tokens=RequestTokens(
            vault=StoreTokenVault(store, secret_box, keys=REQUEST_TOKEN_KEYS),
            outbound=outbound,
            timeout_s=settings.provider_timeout_s,
        ),
        catalog=catalog,
        installations=installations,
        redirect_uri=settings.effective_public_url + OAUTH_CALLBACK_PATH,
    )
    hub = EventHub()
    held_receipts = HeldReceipts(store=store, hub=hub, receipt_wait_s=settings.receipt_wait_s)
    delivery = build_delivery(
        store=store,
        catalog=catalog,
        installations=installations,
        outbound=outbound,
        hub=hub,
        auth=auth,
        on_sent=held_receipts.on_message_sent,
        policy=RetryPolicy(
            max_attempts=settings.send_max_attempts,
            initial_s=settings.send_retry_initial_s,
            max_s=settings.send_retry_max_s,
            max_age_s=settings.send_max_age_s,
        ),
        provider_timeout_s=settings.provider_timeout_s,
        concurrency=settings.send_concurrency,
        max_queued=settings.send_max_queued,
        reply_margin_s=settings.send_reply_margin_s,
        lease_s=settings.send_lease_s,
        exchanges=exchanges,
        metrics=metrics,
    )
    subscriptions = SubscriptionKeeper(
        store=store,
        catalog=catalog,
        installations=installations,
        outbound=outbound,
        timeout_s=settings.provider_timeout_s,
        auth=auth,
        retry_base_s=settings.subscribe_retry_s,
        exchanges=exchanges,
        metrics=metrics,
    )
    media = build_media(
        store=store,
        blobs=blob_store(settings),
        outbound=outbound,
        hub=hub,
        catalog=catalog,
        installations=installations,
        auth=auth,
        secret_box=secret_box,
        public_url=settings.effective_public_url,
        fetch=settings.media_fetch,
        wait_s=settings.media_wait_s,
        fetch_timeout_s=settings.media_fetch_timeout_s,
        max_item_bytes=settings.media_max_item_bytes,
        max_message_bytes=settings.media_max_message_bytes,
        url_ttl_s=settings.media_url_ttl_s,
        exchanges=exchanges,
        metrics=metrics,
    )
    # (ext) docs/format.md, "Contact names": lookups in the background, each bounded by a
    # timeout of its own, through the provider call a send makes
    contact_names = ContactNames(
        installations=installations,
        attempt=ProviderAttempt(
            installations=installations,
            outbound=outbound,
            provider_timeout_s=min(settings.provider_timeout_s, LOOKUP_TIMEOUT_S),
            auth=auth,
            exchanges=exchanges,
        ),
    )
    ingestor = Ingestor(
        store=store,
        catalog=catalog,
        installations=installations,
        hub=hub,
        held_receipts=held_receipts,
        oauth_callback=OAuthCallback(auth=auth, on_authorized=subscriptions.after_authorization),
        media=media.fetcher,
        contact_names=contact_names,
        metrics=metrics,
    )
    media_rpcs = MediaRpcs(
        media.library,
        send_max_age_s=settings.send_max_age_s,
        allowed_for=media.rules.allowed_for,
    )
    servicer = GatewayServicer(
        store=store,
        catalog=catalog,
        installations=installations,
        send_path=delivery.send_path,
        signals=delivery.signals,
        ingestor=ingestor,
        hub=hub,
        subscriptions=subscriptions,
        auth=auth,
        authorization=AuthorizationStatus(store),
        default_deadline_s=settings.send_deadline_s,
        access=access.policy,
        media=media_rpcs,
        exchanges=exchanges,
        metrics=metrics,
    )
    # A request that is not valid protobuf is INVALID_ARGUMENT, for every method.
    add_lenient_servicer(gateway_pb2_grpc.add_GatewayServicer_to_server, servicer, server)
    delivery_streams = DeliveryStreams()
    ingest_servicer = IngestServicer(ingestor, media_rpcs, delivery_streams)
    add_lenient_servicer(ingest_pb2_grpc.add_IngestServicer_to_server, ingest_servicer, server)
    health_servicer = health.aio.HealthServicer()
    add_lenient_servicer(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server)
    reflection.enable_server_reflection(
        (GATEWAY_SERVICE, INGEST_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    built = GatewayServer(
        settings=settings,
        grpc_server=server,
        grpc_port=grpc_port,
        http_socket=http_socket,
        metrics=metrics,
        metrics_socket=metrics_socket,
        store=store,
        outbound=outbound,
        health=health_servicer,
        catalog=catalog,
        installations=installations,
        hub=hub,
        ingestor=ingestor,
        held_receipts=held_receipts,
        subscriptions=subscriptions,
        delivery=delivery.queue,
        media=media,
        delivery_streams=delivery_streams,
        contact_names=contact_names,
        exchanges=exchanges,
        retention=RetentionKeeper(
            store,
            Retention(
                events_days=settings.events_retention_days,
                requests_days=settings.requests_retention_days,
                unmatched_days=settings.unmatched_retention_days,
                messages_days=settings.messages_retention_days,
                dedupe_days=settings.dedupe_retention_days,
                media_days=settings.media_retention_days,
                exchanges_days=settings.exchanges_retention_days,
            ),
            interval_s=settings.purge_interval_s,
            purge_media=media.library.purge,
        ),
    )
    return built


def _bind_grpc(server: grpc.aio.Server, access: ApiAccess, listen: str, *, shared: bool) -> int:
    """Bind the gRPC API's address; :class:`ListenError` naming ``grpc_listen`` when taken."""
    if not shared:  # a worker's port is held by its supervisor, which checked it
        check_free("grpc_listen", listen)  # the reason (in use, not available) in one line
    try:
        return access.bind(server, listen)
    except (RuntimeError, OSError) as exc:  # grpc says RuntimeError("Failed to bind …")
        raise ListenError(f"grpc_listen {listen}: cannot listen: {exc}") from None


def blob_store(settings: Settings) -> BlobStore:
    """Where stored files are kept (docs/media.md): files under the data directory, or the
    S3-compatible store ``media_store`` names (credentials from the AWS_* environment)."""
    if settings.media_store:
        bucket, _, prefix = settings.media_store.removeprefix("s3://").partition("/")
        return S3BlobStore(
            bucket=bucket,
            endpoint_url=settings.media_s3_endpoint or None,
            region=settings.media_s3_region,
            key_prefix=prefix,
        )
    return FileBlobStore(settings.data_dir / "media")


# A record verified by the media route's ``head``, kept for the ``read`` that follows.
_HANDED_FOR_S = 5.0
_MAX_HANDED = 1024


class LibraryMediaReader:
    """The in-process sidecar's media reader (docs/media.md): the stored files, through their
    signed URLs.

    The route calls ``read`` right after ``head`` accepted the same URL: the record ``head``
    verified and read is handed to that ``read`` (for a few seconds at most) rather than read
    from the store and verified a second time for every GET."""

    def __init__(self, library: MediaLibrary) -> None:
        self._library = library
        self._heads: dict[tuple[str, int, str], tuple[float, MediaRecord]] = {}

    async def head(self, media_id: str, expires_at: int, signature: str) -> MediaHead | None:
        record = await self._library.verified(media_id, expires_at, signature)
        if record is None:
            return None
        if len(self._heads) >= _MAX_HANDED:  # HEAD requests and 416s leave theirs
            self._heads.clear()
        self._heads[(media_id, expires_at, signature)] = (time.monotonic(), record)
        return MediaHead(content_type=record.content_type, size=record.size)

    async def read(
        self, media_id: str, expires_at: int, signature: str, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        handed = self._heads.pop((media_id, expires_at, signature), None)
        if handed is not None and time.monotonic() - handed[0] < _HANDED_FOR_S:
            record: MediaRecord | None = handed[1]
        else:
            record = await self._library.verified(media_id, expires_at, signature)
        if record is None:
            return
        async for chunk in self._library.read(record, start, end):
            yield chunk


async def _stand_ins(settings: Settings, policy: OutboundPolicy) -> dict[str, StandIn]:
    """The integrations whose provider calls go to a stand-in (docs/format.md, "Proving a
    definition"): each refused unless the outbound policy lets a call reach its host, and each
    announced with a warning, since those calls no longer reach the provider."""
    stand_ins = parse_stand_ins(settings.provider_stand_in)
    for stand_in in stand_ins.values():
        try:
            await check_stand_in(stand_in, policy)
        except (PolicyRefused, OSError) as exc:
            raise SettingsError(
                f"provider_stand_in {stand_in.integration}={stand_in.base}: provider calls "
                f"cannot reach it: {exc}"
            ) from None
        logger.warning(
            "provider calls of integration %s go to the stand-in %s, not to the provider: "
            "for trying a definition only",
            stand_in.integration,
            stand_in.base,
            extra={"integration": stand_in.integration, "stand_in": stand_in.base},
        )
    return stand_ins


class Companion(Protocol):
    """What :func:`run` closes after the service has stopped."""

    async def aclose(self) -> None: ...


async def run(
    settings: Settings,
    *,
    companion: Callable[[GatewayServer], Awaitable[Companion]] | None = None,
    shared_ports: bool = False,
    on_serving: Callable[[GatewayServer], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM.

    ``companion``, when given, is started once the service is built, before it serves (it may
    register integrations), and closed after the service stopped: ``msgbridge serve --demo``
    passes :func:`server.demo.start_demo`, so that the service itself never imports the demo.
    A worker of ``msgbridge serve --workers N`` (server/_supervisor.py) passes ``shared_ports``
    (see :func:`build_server`) and ``on_serving``, called once it serves.
    """
    built, _ = await build_server(settings, shared_ports=shared_ports)
    started = None
    try:
        started = await companion(built) if companion is not None else None
        await built.start()
    except BaseException:
        # Released in order, so that nothing is left to complain at exit (grpc's Server.__del__).
        await built.stop(0)
        if started is not None:
            await started.aclose()
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    if on_serving is not None:
        on_serving(built)
    await stopping.wait()
    # In-flight sends get the time a send without a caller's deadline is given.
    grace = settings.send_deadline_s
    logger.info("shutting down", extra={"grace_s": grace})
    await built.stop(grace)
    if started is not None:
        await started.aclose()
