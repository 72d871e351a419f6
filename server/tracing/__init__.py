"""Traces with OpenTelemetry, off unless the ``OTEL_*`` environment turns them on
(docs/operations.md, "Traces"): the setup (:mod:`._setup`) and the hooks on the send and
webhook paths (:mod:`._spans`). Nothing here imports the rest of the service."""

from ._setup import Tracing, TracingError, configure_tracing, exporter_names
from ._spans import (
    delivery_span,
    log_trace_ids,
    note_grpc_status,
    note_http_status,
    provider_call_span,
    provider_trace_headers,
    remember_webhook_trace,
    rpc_span,
    span,
    streamed_spans,
    trace_carrier,
    trace_metadata,
    traced,
    tracing_on,
    webhook_span,
)

__all__ = [
    "Tracing",
    "TracingError",
    "configure_tracing",
    "delivery_span",
    "exporter_names",
    "log_trace_ids",
    "note_grpc_status",
    "note_http_status",
    "provider_call_span",
    "provider_trace_headers",
    "remember_webhook_trace",
    "rpc_span",
    "span",
    "streamed_spans",
    "trace_carrier",
    "trace_metadata",
    "traced",
    "tracing_on",
    "webhook_span",
]
