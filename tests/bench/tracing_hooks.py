"""The CPU time of the tracing hooks one send passes through (docs/operations.md, "Traces"):
with traces off (the default) against no hook at all, and with traces on (the SDK, its batch
processor, an exporter that drops what it is given).

    .venv/bin/python -m tests.bench.tracing_hooks

A send passes through seven hooks: the RPC's span and its status, ``store.enqueue``,
``deliver``, ``render``, ``provider call`` and its status, ``store.finish_attempt``, and the
trace ids of a log line. CPU time (``time.process_time``, every thread), the median of 7 rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from server.tracing import (
    log_trace_ids,
    note_grpc_status,
    note_http_status,
    provider_call_span,
    rpc_span,
    span,
    traced,
)
from server.tracing._spans import install_tracer

ROUNDS = 7


class _Call:
    """What the RPC span reads of a call: its metadata (none here)."""

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return ()


class _Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _work() -> int:
    return 1


def _bare(n: int) -> None:
    for _ in range(n):
        pass


def _hooks(n: int) -> None:
    call = _Call()
    for _ in range(n):
        with rpc_span("SendMessage", call) as rpc:
            with span("render", {"msgbridge.integration": "acme"}):
                pass
            with provider_call_span("POST", "acme") as provider:
                note_http_status(provider, 200, "127.0.0.1", 8090)
            note_grpc_status(rpc, grpc.StatusCode.OK)
        log_trace_ids()


async def _awaits(n: int) -> None:
    for _ in range(n):
        await _work()
        await _work()
        await _work()


async def _traced_awaits(n: int) -> None:
    for _ in range(n):
        await traced("store.enqueue", _work())
        await traced("deliver", _work(), {"msgbridge.message_id": "m"})
        await traced("store.finish_attempt", _work())


def _ns(run: Callable[[int], None], n: int) -> float:
    started = time.process_time()
    run(n)
    return (time.process_time() - started) / n * 1e9


def _ns_async(run: Callable[[int], Awaitable[None]], n: int) -> float:
    async def main() -> float:
        started = time.process_time()
        await run(n)
        return (time.process_time() - started) / n * 1e9

    return asyncio.run(main())


def _median(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(ROUNDS))


def per_send(n: int) -> float:
    """The hooks' CPU time per send, nanoseconds, beyond the same work without them."""
    sync = _median(lambda: _ns(_hooks, n)) - _median(lambda: _ns(_bare, n))
    awaited = _median(lambda: _ns_async(_traced_awaits, n)) - _median(lambda: _ns_async(_awaits, n))
    return sync + awaited


def main() -> None:
    print(f"traces off: {per_send(200_000):8.0f} ns of CPU per send")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropped()))
    install_tracer(provider.get_tracer("msgbridge"))
    try:
        print(f"traces on:  {per_send(5_000):8.0f} ns of CPU per send (7 spans, batch processor)")
    finally:
        install_tracer(None)
        provider.shutdown()


if __name__ == "__main__":
    main()
