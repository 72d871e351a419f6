"""The webhook sidecar: HTTP in from providers, the raw request out to the core, its verdict back.

Build the application with :func:`build_sidecar_app` around an :class:`IngestHandler` (the core's
ingest object in-process, or a :class:`GrpcIngestForwarder` to a core elsewhere), serve it with
a :class:`SidecarServer` (``async start()`` / ``async aclose()``). :func:`run_sidecar` is
``msgbridge sidecar``.
"""

from ._app import SIDECAR_LIMITS, SidecarLimits, build_sidecar_app
from ._forward import CoreUnavailable, GrpcIngestForwarder, IngestHandler
from ._run import run_sidecar, split_host_port
from ._server import SidecarServer

__all__ = [
    "SIDECAR_LIMITS",
    "CoreUnavailable",
    "GrpcIngestForwarder",
    "IngestHandler",
    "SidecarLimits",
    "SidecarServer",
    "build_sidecar_app",
    "run_sidecar",
    "split_host_port",
]
