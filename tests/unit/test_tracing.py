"""When the ``OTEL_*`` environment turns traces on, and what the hooks cost and record
(docs/operations.md, "Traces")."""

from __future__ import annotations

import json
import logging
from importlib.metadata import entry_points

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server._logging import JsonFormatter, TextFormatter
from server.tracing import (
    TracingError,
    configure_tracing,
    exporter_names,
    span,
    traced,
    tracing_on,
)


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, ()),
        ({"OTEL_SERVICE_NAME": "gw"}, ()),
        ({"OTEL_TRACES_EXPORTER": "none"}, ()),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, ()),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "otlp, Console"}, ("otlp", "console")),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "TRUE"}, ()),
    ],
)
def test_traces_are_off_unless_the_environment_asks(
    environ: dict[str, str], names: tuple[str, ...]
) -> None:
    assert exporter_names(environ) == names


def test_off_by_default_no_sdk_is_configured() -> None:
    assert configure_tracing({}) is None
    assert not tracing_on()
    with span("render") as current:
        assert not current.is_recording()


def test_an_otlp_endpoint_turns_on_the_otlp_exporter_over_grpc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    tracing = configure_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert tracing is not None
    try:
        assert tracing_on()
        assert tracing.exporters == ("otlp",)
        assert tracing.provider.resource.attributes["service.name"] == "msgbridge"
    finally:
        tracing.shutdown()
    assert not tracing_on()


def test_the_service_name_comes_from_otel_service_name() -> None:
    tracing = configure_tracing({"OTEL_SERVICE_NAME": "sms-gw"}, exporter=InMemorySpanExporter())
    assert tracing is not None
    try:
        assert tracing.provider.resource.attributes["service.name"] == "sms-gw"
    finally:
        tracing.shutdown()


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin-nope"}, "no span exporter 'zipkin-nope'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
            "expected grpc or http/protobuf",
        ),
    ],
)
def test_an_exporter_that_cannot_be_made_is_refused_by_name(
    environ: dict[str, str], said: str
) -> None:
    with pytest.raises(TracingError, match=said):
        configure_tracing(environ)
    assert not tracing_on()


def test_no_instrumentation_is_installed_that_could_trace_provider_calls_by_itself() -> None:
    assert list(entry_points(group="opentelemetry_instrumentor")) == []


async def test_a_failure_is_recorded_by_its_class_never_its_text() -> None:
    exporter = InMemorySpanExporter()
    tracing = configure_tracing({}, exporter=exporter)
    assert tracing is not None

    async def fails() -> None:
        raise ValueError("the secret key-123 leaked")

    try:
        with pytest.raises(ValueError, match="leaked"):
            await traced("store.ingest", fails())
    finally:
        tracing.shutdown()
    (failed,) = exporter.get_finished_spans()
    assert failed.status.description == "ValueError"
    assert dict(failed.attributes or {}) == {"error.type": "ValueError"}
    assert failed.events == ()  # no exception event, so no message or traceback


def _record(logger: logging.Logger) -> logging.LogRecord:
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, "sent", (), None)


def test_log_lines_carry_the_current_trace_id() -> None:
    logger = logging.getLogger("tests.tracing")
    assert "trace_id" not in json.loads(JsonFormatter().format(_record(logger)))  # off
    tracing = configure_tracing({}, exporter=InMemorySpanExporter())
    assert tracing is not None
    try:
        assert "trace_id" not in json.loads(JsonFormatter().format(_record(logger)))  # no span
        with span("render") as current:
            line = json.loads(JsonFormatter().format(_record(logger)))
            text = TextFormatter().format(_record(logger))
        context = current.get_span_context()
        assert line["trace_id"] == format(context.trace_id, "032x")
        assert line["span_id"] == format(context.span_id, "016x")
        assert f"trace_id={context.trace_id:032x}" in text
    finally:
        tracing.shutdown()
