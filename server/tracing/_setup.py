"""Turning traces on from the standard ``OTEL_*`` environment (docs/operations.md, "Traces").

Off unless the environment asks: ``OTEL_TRACES_EXPORTER`` names one or more exporters (``none``
keeps them off), or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) is set, which
means ``otlp``; ``OTEL_SDK_DISABLED=true`` wins over both. Unlike the OpenTelemetry default
(``otlp`` when nothing is said), nothing is exported and no SDK is loaded unless asked.

When on, the SDK is imported here, and only here: a tracer provider with the service's resource
(``OTEL_SERVICE_NAME``, default ``msgbridge``, and ``OTEL_RESOURCE_ATTRIBUTES``), a batch span
processor per exporter (which read their own ``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``
variables), the sampler of ``OTEL_TRACES_SAMPLER``. The tracer is installed for the hooks of
:mod:`server.tracing._spans`; the global OpenTelemetry provider is left alone, so that no
library instruments itself through it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ._spans import install_tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["Tracing", "TracingError", "configure_tracing", "exporter_names"]

logger = logging.getLogger(__name__)

_EXPORTERS_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


class TracingError(ValueError):
    """The ``OTEL_*`` environment asks for traces that cannot be made (an unknown exporter)."""


class Tracing:
    """Traces on: :meth:`shutdown` exports what is left and turns them off again."""

    def __init__(self, provider: TracerProvider, exporters: tuple[str, ...]) -> None:
        self.provider = provider
        self.exporters = exporters

    def shutdown(self) -> None:
        install_tracer(None)
        self.provider.shutdown()


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def exporter_names(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The exporters the environment asks for; none: traces off."""
    if _true(environ.get("OTEL_SDK_DISABLED")):
        return ()
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if named:
        names = (n.strip().lower() for n in named.split(","))
        return tuple(n for n in names if n and n != "none")
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        return ("otlp",)
    return ()


def configure_tracing(
    environ: Mapping[str, str], *, exporter: SpanExporter | None = None
) -> Tracing | None:
    """Turn traces on when ``environ`` asks (or, for tests, export to ``exporter`` as each span
    ends); None when they stay off. :class:`TracingError` names what cannot be done."""
    names = exporter_names(environ)
    if _true(environ.get("OTEL_SDK_DISABLED")) or (exporter is None and not names):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    service = environ.get("OTEL_SERVICE_NAME", "").strip() or "msgbridge"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        names = ()
    else:
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    install_tracer(provider.get_tracer("msgbridge"))
    logger.info("traces on", extra={"exporters": ",".join(names) or "given", "service": service})
    return Tracing(provider, names)


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    """The exporter named as ``OTEL_TRACES_EXPORTER`` names them (the packages' entry points);
    ``otlp`` is OTLP over the protocol of ``OTEL_EXPORTER_OTLP_PROTOCOL`` (default gRPC)."""
    wanted = name
    if name == "otlp":
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        ).strip()
        if protocol not in _OTLP_BY_PROTOCOL:
            raise TracingError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL: expected grpc or http/protobuf, not {protocol!r}"
            )
        wanted = _OTLP_BY_PROTOCOL[protocol]
    found = {e.name: e for e in entry_points(group=_EXPORTERS_GROUP)}
    if wanted not in found:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER: no span exporter {wanted!r} is installed "
            f"(installed: {', '.join(sorted(found)) or 'none'})"
        )
    made: Any = found[wanted].load()()
    exporter: SpanExporter = made
    return exporter
