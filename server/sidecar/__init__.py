"""The webhook sidecar: HTTP in from providers, the raw request out to the core, its verdict back.

Build the application with :func:`build_sidecar_app` around an :class:`IngestHandler` (the core's
ingest object in-process, or a :class:`GrpcIngestForwarder` to a core elsewhere, over one
long-lived call per core), which takes each webhook as a :class:`Delivery` and answers a
:class:`Verdict` (converted to and from ``msgbridge.v1.ingest`` messages only at the gRPC
boundary), serve it with
a :class:`SidecarServer` (``async start()`` / ``async aclose()``). :func:`run_sidecar` is
``msgbridge sidecar``. Given a :class:`MediaReader`, it also serves stored media at signed URLs
(``/media/{media_id}``). Its paths (:data:`FORWARDED_PATHS`, :func:`webhook_target`…) are written
once, for the sidecar and the core alike.
"""

from ._app import SIDECAR_LIMITS, SidecarLimits, build_sidecar_app
from ._delivery import (
    Delivery,
    Header,
    Verdict,
    delivery_message,
    delivery_of,
    verdict_message,
    verdict_of,
)
from ._forward import CoreUnavailable, GrpcIngestForwarder, IngestHandler
from ._media import GrpcMediaReader, MediaHead, MediaRange, MediaReader, byte_range
from ._routes import (
    FORWARDED_PATHS,
    HEALTH_PATH,
    MEDIA_EXPIRES_PARAM,
    MEDIA_PATH,
    MEDIA_ROUTE,
    MEDIA_SIGNATURE_PARAM,
    OAUTH_CALLBACK_PATH,
    READY_PATH,
    is_media_id,
    is_oauth_callback,
    kept_webhook_path,
    media_path,
    webhook_path,
    webhook_target,
)
from ._run import run_sidecar, split_host_port
from ._server import SidecarServer

__all__ = [
    "FORWARDED_PATHS",
    "HEALTH_PATH",
    "MEDIA_EXPIRES_PARAM",
    "MEDIA_PATH",
    "MEDIA_ROUTE",
    "MEDIA_SIGNATURE_PARAM",
    "OAUTH_CALLBACK_PATH",
    "READY_PATH",
    "SIDECAR_LIMITS",
    "CoreUnavailable",
    "Delivery",
    "GrpcIngestForwarder",
    "GrpcMediaReader",
    "Header",
    "IngestHandler",
    "MediaHead",
    "MediaRange",
    "MediaReader",
    "SidecarLimits",
    "SidecarServer",
    "Verdict",
    "build_sidecar_app",
    "byte_range",
    "delivery_message",
    "delivery_of",
    "is_media_id",
    "is_oauth_callback",
    "kept_webhook_path",
    "media_path",
    "run_sidecar",
    "split_host_port",
    "verdict_message",
    "verdict_of",
    "webhook_path",
    "webhook_target",
]
