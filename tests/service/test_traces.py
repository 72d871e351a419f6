"""Traces over real sockets (docs/operations.md, "Traces"): a send and a webhook each make one
trace with the documented spans, read from the SDK's in-memory exporter set up by the same
function the server uses; log lines carry the trace id; providers never get a trace header
unless asked; and with no ``OTEL_*`` environment nothing is traced."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import aiohttp
import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server._logging import JsonFormatter
from server.demo import RunningFakeProvider
from server.sidecar import Delivery, GrpcIngestForwarder, Header
from server.tracing import configure_tracing, span, tracing_on

from .conftest import Gateway, GatewayFactory, definition
from .test_inbound import SEED_WEBHOOKS, hook_path, inbound_definition, subscribe_from_now


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = configure_tracing({}, exporter=exporter)
    assert tracing is not None
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def finished(
    exporter: InMemorySpanExporter, *names: str, within_s: float = 10.0
) -> list[ReadableSpan]:
    """The finished spans, once every one of ``names`` has ended (a delivery's spans may end
    just after its caller was replied)."""
    async with asyncio.timeout(within_s):
        while True:
            done = list(exporter.get_finished_spans())
            if set(names) <= {s.name for s in done}:
                return done
            await asyncio.sleep(0.01)


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


def parent_of(child: ReadableSpan) -> int | None:
    return child.parent.span_id if child.parent is not None else None


def span_id(s: ReadableSpan) -> int:
    assert s.context is not None
    return s.context.span_id


def trace_id(s: ReadableSpan) -> int:
    assert s.context is not None
    return s.context.trace_id


def attribute_text(spans: list[ReadableSpan]) -> str:
    return json.dumps([dict(s.attributes or {}) for s in spans], default=str)


async def test_a_send_is_one_trace_from_the_call_to_the_store(
    gateway: Gateway, provider: RunningFakeProvider, spans: InMemorySpanExporter
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    spans.clear()
    reply = await gateway.send(text="hello")
    done = await finished(
        spans, "SendMessage", "store.enqueue", "deliver", "render", "provider call"
    )
    done = await finished(spans, "store.finish_attempt")

    call = one(done, "SendMessage")
    assert call.kind is trace.SpanKind.SERVER
    assert call.parent is None  # the caller sent no traceparent
    assert call.attributes is not None and call.attributes["rpc.grpc.status_code"] == 0
    in_trace = [s for s in done if trace_id(s) == trace_id(call)]
    names = {s.name for s in in_trace}
    assert {"store.enqueue", "deliver", "render", "provider call", "store.finish_attempt"} <= names
    deliver = one(in_trace, "deliver")
    assert parent_of(one(in_trace, "store.enqueue")) == span_id(call)
    assert parent_of(deliver) == span_id(call)
    for name in ("render", "provider call", "store.finish_attempt"):
        assert parent_of(one(in_trace, name)) == span_id(deliver), name
    assert deliver.attributes is not None
    assert deliver.attributes["msgbridge.message_id"] == reply.message_id

    provider_call = one(in_trace, "provider call")
    assert provider_call.kind is trace.SpanKind.CLIENT
    assert dict(provider_call.attributes or {}) == {
        "http.request.method": "POST",
        "msgbridge.integration": "acme-sms",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": int(provider.url.rsplit(":", 1)[1]),
    }
    # Never the path, the query or a property's value.
    assert "/messages" not in attribute_text(done) and "key-123" not in attribute_text(done)
    # No trace header reached the provider (trace_providers is off by default).
    (received,) = provider.state.requests
    assert not {k.lower() for k, _ in received.headers} & {"traceparent", "tracestate"}


async def test_a_failed_call_is_marked_with_its_code_only(
    gateway: Gateway, provider: RunningFakeProvider, spans: InMemorySpanExporter
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send(org="org-unknown")
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    call = one(await finished(spans, "SendMessage"), "SendMessage")
    assert call.status.status_code is trace.StatusCode.ERROR
    assert call.status.description == "NOT_FOUND"
    assert call.attributes is not None and call.attributes["rpc.grpc.status_code"] == 5


async def test_trace_providers_sends_the_provider_call_s_traceparent(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, spans: InMemorySpanExporter
) -> None:
    gateway: Gateway = await start_gateway(trace_providers=True)
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    await gateway.send()
    provider_call = one(await finished(spans, "provider call"), "provider call")
    (received,) = provider.state.requests
    headers = {k.lower(): v for k, v in received.headers}
    version, sent_trace, sent_parent, _ = headers["traceparent"].split("-")
    assert version == "00"
    assert int(sent_trace, 16) == trace_id(provider_call)
    assert int(sent_parent, 16) == span_id(provider_call)


async def test_a_webhook_is_one_trace_through_verify_match_store_and_the_stream(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    spans: InMemorySpanExporter,
    http: aiohttp.ClientSession,
    json_logs: io.StringIO,
) -> None:
    inbound: Gateway = await start_gateway(sidecar=True)
    auth = {
        "type": "hmac",
        "algorithm": "sha256",
        "header": "X-Signature",
        "secret": "$Webhook secret$",
        "encoding": "hex",
        "signed": "body",
    }
    await inbound.register(
        inbound_definition(
            provider.url, SEED_WEBHOOKS, WebhookAuth=auth, properties=["API key", "Webhook secret"]
        )
    )
    installation = await inbound.enable(
        "acme-sms", properties={"API key": "k", "Webhook secret": "whsec-0123456789"}
    )
    subscriber = await subscribe_from_now(inbound)
    spans.clear()
    body = json.dumps(
        {"method": "message", "params": {"from": "+1", "to": "+15550001111", "content": "hi"}}
    ).encode()
    signature = hmac.new(b"whsec-0123456789", body, hashlib.sha256).hexdigest()
    url = f"http://127.0.0.1:{inbound.server.http_port}{hook_path(installation)}"
    headers = {
        "Content-Type": "application/json",
        "X-Signature": signature,
        # A provider's trace header is not trusted: the webhook starts a trace of its own.
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    async with http.post(url, data=body, headers=headers) as answer:
        assert answer.status == 200
    (event,) = await subscriber.wait_for(1)
    done = await finished(spans, "webhook", "verify", "match", "route", "store.ingest", "stream")
    await subscriber.close()

    webhook = one(done, "webhook")
    assert webhook.parent is None
    assert trace_id(webhook) != 0x0AF7651916CD43DD8448EB211C80319C
    assert webhook.kind is trace.SpanKind.SERVER
    assert dict(webhook.attributes or {}) == {
        "http.request.method": "POST",
        "msgbridge.integration": "acme-sms",
        "http.response.status_code": 200,
    }
    for name in ("verify", "match", "route", "store.ingest"):
        child = one(done, name)
        assert trace_id(child) == trace_id(webhook), name
        assert parent_of(child) == span_id(webhook), name
    streamed = one(done, "stream")
    assert trace_id(streamed) == trace_id(webhook)
    assert parent_of(streamed) == span_id(webhook)
    assert streamed.attributes is not None
    assert streamed.attributes["msgbridge.event_cursor"] == event.cursor
    assert "whsec" not in attribute_text(done) and installation.webhook_url not in attribute_text(
        done
    )

    # The webhook's log line carries its trace id.
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    (ingested,) = [line for line in lines if line["msg"] == "webhook ingested"]
    assert ingested["trace_id"] == format(trace_id(webhook), "032x")
    assert ingested["span_id"] == format(span_id(webhook), "016x")


async def test_a_separate_sidecar_s_trace_continues_in_the_core(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, spans: InMemorySpanExporter
) -> None:
    gateway: Gateway = await start_gateway()
    await gateway.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await gateway.enable("acme-sms")
    body = json.dumps(
        {"method": "message", "params": {"from": "+1", "to": "+15550001111", "content": "hi"}}
    ).encode()
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{gateway.port}")
    try:
        with span("webhook") as sidecar:
            verdict = await forwarder.ingest(
                Delivery(
                    method="POST",
                    path=hook_path(installation),
                    headers=(Header("Content-Type", "application/json"),),
                    body=body,
                    url="http://127.0.0.1:0" + hook_path(installation),
                )
            )
    finally:
        await forwarder.aclose()
    assert verdict.http_status == 200
    done = await finished(spans, "webhook", "IngestWebhook", "store.ingest")
    core = one(done, "IngestWebhook")
    assert trace_id(core) == sidecar.get_span_context().trace_id
    assert parent_of(core) == sidecar.get_span_context().span_id
    assert parent_of(one(done, "store.ingest")) == span_id(core)


async def test_off_by_default_nothing_is_traced_and_no_header_leaves(
    gateway: Gateway, provider: RunningFakeProvider, json_logs: io.StringIO
) -> None:
    assert not tracing_on()
    # The global OpenTelemetry provider is never set: no library traces through it.
    assert not type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.sdk")
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    await gateway.send()
    (received,) = provider.state.requests
    assert not {k.lower() for k, _ in received.headers} & {"traceparent", "tracestate"}
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert lines and not any("trace_id" in line for line in lines)
