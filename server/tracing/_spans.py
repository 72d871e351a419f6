"""The spans of the two paths (docs/operations.md, "Traces"), and what is cheap when they are off.

Every hook is one call that returns a context manager: with no tracer installed (the default,
see :mod:`server.tracing._setup`) it is one shared ``nullcontext`` — a global read and a
comparison, no span object, no context switch. With a tracer each hook starts a span of the
OpenTelemetry SDK, made current for what runs inside it.

What a span never carries: a header, a body, a URL's path or query, a property value, an
exception's text (a message may quote a request); a failure is its exception's class name.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol, TypeVar

import grpc
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

__all__ = [
    "delivery_span",
    "install_tracer",
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

_tracer: trace.Tracer | None = None
_NO_SPAN: AbstractContextManager[Span] = contextlib.nullcontext(trace.INVALID_SPAN)
_NO_IDS: Mapping[str, str] = {}
# Only the W3C trace context travels (never baggage): between the sidecar and the core, from an
# API caller, and to providers only when `trace_providers` asks for it.
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})

# The webhook traces whose events this process may stream, by webhook request id: a streamed
# event's `stream` span joins its webhook's trace. Bounded; an older one streams untraced.
_WEBHOOK_TRACES: OrderedDict[str, SpanContext] = OrderedDict()
_MAX_WEBHOOK_TRACES = 4096


def install_tracer(tracer: trace.Tracer | None) -> None:
    """Make ``tracer`` the one every hook uses (None: tracing off)."""
    global _tracer
    _tracer = tracer
    _WEBHOOK_TRACES.clear()


def tracing_on() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Span]:
    """A span named ``name``, a child of the current one."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    return _Started(tracer, name, attributes, SpanKind.INTERNAL, None)


_T = TypeVar("_T")


def traced(
    name: str, awaitable: Awaitable[_T], attributes: Mapping[str, AttributeValue] | None = None
) -> Awaitable[_T]:
    """``awaitable`` awaited in a span named ``name`` (itself, untouched, when off): a hook that
    changes no more than the line of an ``await``."""
    tracer = _tracer
    if tracer is None:
        return awaitable
    return _awaited(tracer, name, awaitable, attributes)


async def _awaited(
    tracer: trace.Tracer,
    name: str,
    awaitable: Awaitable[_T],
    attributes: Mapping[str, AttributeValue] | None,
) -> _T:
    with _Started(tracer, name, attributes, SpanKind.INTERNAL, None):
        return await awaitable


def rpc_span(method: str, context: grpc.aio.ServicerContext) -> AbstractContextManager[Span]:
    """The server span of a unary RPC, continuing the caller's trace when its metadata carries a
    ``traceparent`` (a separate sidecar's, or an API client's), else starting one."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    carrier = {k: v for k, v in context.invocation_metadata() or () if k in _TRACE_HEADERS}
    attributes = {"rpc.system": "grpc", "rpc.method": method}
    return _Started(tracer, method, attributes, SpanKind.SERVER, _PROPAGATOR.extract(carrier))


def delivery_span(
    name: str, method: str, trace_context: Mapping[str, str]
) -> AbstractContextManager[Span]:
    """The server span ``name`` of one delivery of the streaming RPC ``method``
    (``IngestWebhooks``), continuing the trace its sender put beside it (:func:`trace_carrier`),
    as :func:`rpc_span` does a call's."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    carrier = {k: v for k, v in trace_context.items() if k in _TRACE_HEADERS}
    attributes = {"rpc.system": "grpc", "rpc.method": method}
    return _Started(tracer, name, attributes, SpanKind.SERVER, _PROPAGATOR.extract(carrier))


def webhook_span(method: str, integration: str) -> AbstractContextManager[Span]:
    """The sidecar's span of one webhook: always a new trace (a provider's trace headers are
    not trusted)."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    attributes = {"http.request.method": method, "msgbridge.integration": integration}
    return _Started(tracer, "webhook", attributes, SpanKind.SERVER, Context())


def provider_call_span(method: str, integration: str | None) -> AbstractContextManager[Span]:
    """One HTTP call to a provider (its host and status noted by :func:`note_http_status`);
    never its path, query, headers or body."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    attributes: dict[str, AttributeValue] = {"http.request.method": method}
    if integration:
        attributes["msgbridge.integration"] = integration
    return _Started(tracer, "provider call", attributes, SpanKind.CLIENT, None)


class _Started(AbstractContextManager[Span]):
    """A span, current between ``__enter__`` and ``__exit__``; a failure is its exception's class
    (the SDK's own exception recording would keep the exception's text). A class, not a
    generator: half the cost of the SDK's ``start_as_current_span`` per span."""

    __slots__ = ("_span", "_token")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        attributes: Mapping[str, AttributeValue] | None,
        kind: SpanKind,
        context: Context | None,
    ) -> None:
        self._span = tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # An AbortError's status was noted by the RPC boundary (note_grpc_status).
            if exc_type is not None and not issubclass(exc_type, grpc.aio.AbortError):
                _failed(self._span, exc_type.__name__)
        finally:
            context_api.detach(self._token)  # type: ignore[arg-type]
            self._span.end()


def _failed(current: Span, what: str) -> None:
    current.set_status(Status(StatusCode.ERROR, what))
    current.set_attribute("error.type", what)


def note_grpc_status(current: Span, code: grpc.StatusCode) -> None:
    """An RPC span's status: the gRPC code it ends with."""
    if not current.is_recording():
        return
    current.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        _failed(current, code.name)


def note_http_status(
    current: Span,
    status: int,
    host: str | None = None,
    port: int | None = None,
    *,
    failed_from: int = 400,
) -> None:
    """An HTTP span's answer (and the host and port called, for a client span); a status from
    ``failed_from`` on marks it failed (a client's 4xx, a server's 5xx)."""
    if not current.is_recording():
        return
    current.set_attribute("http.response.status_code", status)
    if host:
        current.set_attribute("server.address", host)
    if port:
        current.set_attribute("server.port", port)
    if status >= failed_from:
        _failed(current, str(status))


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace as gRPC metadata, for a call to the core (none when off)."""
    return tuple(trace_carrier().items())


def trace_carrier() -> Mapping[str, str]:
    """The current trace as W3C fields, for one delivery of a stream to the core (none when
    off; the receiver's :func:`delivery_span` continues it)."""
    if _tracer is None:
        return _NO_IDS
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def provider_trace_headers() -> Mapping[str, str]:
    """The current trace as W3C headers, for a provider call when `trace_providers` is on."""
    if _tracer is None:
        return _NO_IDS
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def log_trace_ids() -> Mapping[str, str]:
    """``trace_id`` and ``span_id`` of the current span, for a log line (none when off)."""
    if _tracer is None:
        return _NO_IDS
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return _NO_IDS
    return {
        "trace_id": format(current.trace_id, "032x"),
        "span_id": format(current.span_id, "016x"),
    }


def remember_webhook_trace(request_id: str) -> None:
    """Keep the current trace as the one of webhook request ``request_id``'s events."""
    if _tracer is None:
        return
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return
    _WEBHOOK_TRACES[request_id] = current
    while len(_WEBHOOK_TRACES) > _MAX_WEBHOOK_TRACES:
        _WEBHOOK_TRACES.popitem(last=False)


class StreamedEvent(Protocol):
    @property
    def request_id(self) -> str: ...

    @property
    def cursor(self) -> int: ...

    @property
    def type(self) -> str: ...


def streamed_spans(events: Iterable[StreamedEvent]) -> AbstractContextManager[object]:
    """While a batch of events is handed to a ``StreamEvents`` caller: a ``stream`` span for each
    event whose webhook was traced in this process, in that webhook's trace."""
    tracer = _tracer
    if tracer is None or not _WEBHOOK_TRACES:
        return _NO_SPAN
    return _stream_spans(tracer, events)


@contextlib.contextmanager
def _stream_spans(tracer: trace.Tracer, events: Iterable[StreamedEvent]) -> Iterator[None]:
    started = []
    for event in events:
        webhook = _WEBHOOK_TRACES.get(event.request_id) if event.request_id else None
        if webhook is None:
            continue
        started.append(
            tracer.start_span(
                "stream",
                context=trace.set_span_in_context(NonRecordingSpan(webhook)),
                kind=SpanKind.PRODUCER,
                attributes={
                    "msgbridge.event_cursor": event.cursor,
                    "msgbridge.event_type": event.type,
                },
            )
        )
    try:
        yield
    finally:
        for each in started:
            each.end()
