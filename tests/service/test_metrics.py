"""Prometheus metrics on their own listener (docs/operations.md, "Metrics"; issue 19): the
gateway over real sockets with ``metrics_listen=127.0.0.1:0``, sends (ok and failing, against the
fake provider) and webhooks (matched, duplicate, unmatched, refused), then ``GET /metrics`` and
each metric's value; the listener off by default and refused on a non-loopback address without
``--insecure``; one log line per send and per webhook, without a secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client.parser import text_string_to_metric_families

from msgbridge.v1 import gateway_pb2
from server._logging import JsonFormatter
from server.config import SettingsError, load_settings
from server.demo import Answer, RunningFakeProvider
from server.metrics import NO_METRICS

from .conftest import Gateway, GatewayFactory, definition

SECRET = "whsec-0123456789"
API_KEY = "key-live-7f3a9c"
INTEGRATION = "acme-sms"


def _definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url, id=INTEGRATION))
    doc["properties"] = ["API key", "Webhook secret"]
    doc["Webhook"] = [
        {
            "event_key": "message",
            "event_type": "message",
            "request_method": "POST",
            "request_parameters": {
                "method": "$event_key$",
                "params": {
                    "id": "$messageid$",
                    "from": "$from$",
                    "to": "$to$",
                    "content": "$content$",
                },
            },
        }
    ]
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": provider_url + "/hook",
        "request_parameters": {"url": "$webhook_url$"},
    }
    doc["WebhookAuth"] = {
        "type": "hmac",
        "algorithm": "sha256",
        "header": "X-Signature",
        "secret": "$Webhook secret$",
        "encoding": "hex",
        "signed": "body",
    }
    return json.dumps(doc)


CURSOR_STREAMS = ("msgbridge_stream_subscribers", "kind=cursor")
_T = TypeVar("_T")


async def until(read: Callable[[], Awaitable[_T]], done: Callable[[_T], bool]) -> _T:
    """``read()`` again until ``done`` says its value is the one awaited (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            value = await read()
            if done(value):
                return value
            await asyncio.sleep(0.02)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(http: aiohttp.ClientSession, gateway: Gateway) -> dict[tuple[str, str], float]:
    """``/metrics`` as ``{(sample name, sorted labels as k=v,…): value}``."""
    url = f"http://127.0.0.1:{gateway.server.metrics_port}/metrics"
    async with http.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[(sample.name, labels)] = sample.value
    samples[("__text__", text)] = 0.0
    return samples


async def webhook(
    http: aiohttp.ClientSession, gateway: Gateway, path: str, body: dict[str, Any], *, key: str
) -> int:
    raw = json.dumps(body).encode()
    signature = hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}"
    headers = {"Content-Type": "application/json", "X-Signature": signature}
    async with http.post(url, data=raw, headers=headers) as response:
        return response.status


def _message(message_id: str) -> dict[str, Any]:
    params = {"id": message_id, "from": "+15557654321", "to": "+15550001111", "content": "hi"}
    return {"method": "message", "params": params}


async def test_scraped_metrics_count_sends_webhooks_events_streams_and_the_queue(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True, metrics_listen="127.0.0.1:0")
    await gateway.register(_definition(provider.url))
    installation = await gateway.enable(
        INTEGRATION, properties={"API key": API_KEY, "Webhook secret": SECRET}
    )
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    request = gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    subscribed = gateway_pb2.Subscription.SUBSCRIBED
    # Subscribe runs in the background.
    await until(
        lambda: gateway.stub.GetInstallation(request), lambda i: i.subscription.state == subscribed
    )
    # A durable consumer that reads nothing after this: every later event is its lag.
    consumer = gateway.stub.StreamEvents(gateway_pb2.StreamEventsRequest(consumer="audit"))
    reading = asyncio.create_task(consumer.read())
    await until(gateway.server.store.consumer_frontiers, bool)
    consumer.cancel()
    await asyncio.gather(reading, return_exceptions=True)

    await gateway.send(text="ok")
    provider.state.script("/messages", Answer(status=400, json={"error": "bad number"}))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send(text="refused")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    queued = await gateway.send(text="later", options=gateway_pb2.SendOptions(send_at=later))
    assert queued.state == gateway_pb2.Message.QUEUED

    assert await webhook(http, gateway, path, _message("m-1"), key=SECRET) == 200
    assert await webhook(http, gateway, path, _message("m-1"), key=SECRET) == 200  # duplicate
    assert await webhook(http, gateway, path, {"method": "other"}, key=SECRET) == 200
    assert await webhook(http, gateway, path, _message("m-2"), key="wrong") == 401

    stream = gateway.stub.StreamEvents(gateway_pb2.StreamEventsRequest())
    streaming = asyncio.create_task(stream.read())
    try:
        # The stream is counted once its handler runs.
        got = await until(lambda: scrape(http, gateway), lambda m: m.get(CURSOR_STREAMS) == 1)
    finally:
        stream.cancel()
        await asyncio.gather(streaming, return_exceptions=True)

    def value(name: str, **labels: str) -> float | None:
        return got.get((name, ",".join(f"{k}={v}" for k, v in sorted(labels.items()))))

    sends = "msgbridge_sends_total"
    assert value(sends, integration=INTEGRATION, outcome="sent", code="OK") == 1
    assert value(sends, integration=INTEGRATION, outcome="failed", code="INVALID_ARGUMENT") == 1
    assert value(sends, integration=INTEGRATION, outcome="retried", code="UNAVAILABLE") is None
    responses = "msgbridge_provider_responses_total"
    assert value(responses, integration=INTEGRATION, status="2xx") == 2  # a send, Subscribe
    assert value(responses, integration=INTEGRATION, status="4xx") == 1
    latency = "msgbridge_provider_request_duration_seconds"
    assert value(latency + "_count", integration=INTEGRATION) == 3
    assert value(latency + "_bucket", integration=INTEGRATION, le="+Inf") == 3
    hooks = "msgbridge_webhooks_total"
    for outcome in ("matched", "duplicate", "unmatched", "refused_signature"):
        assert value(hooks, integration=INTEGRATION, outcome=outcome) == 1, outcome
    assert value("msgbridge_events_appended_total", integration=INTEGRATION) == 1
    assert value("msgbridge_queue_depth") == 1  # the scheduled one; not due: no age
    assert value("msgbridge_queue_oldest_due_age_seconds") == 0
    assert value("msgbridge_consumers") == 1
    assert value("msgbridge_consumer_lag_events") == 1  # the matched webhook's event
    assert value("msgbridge_stream_subscribers", kind="cursor") == 1
    subscribe = "msgbridge_subscribe_runs_total"
    assert value(subscribe, integration=INTEGRATION, state="subscribed") == 1
    # Bounded labels: no organisation, number, message id or secret anywhere — in the names,
    # labels and help of every line; a sample's value (a count, a time) is digits that may hold
    # "1555" by chance.
    (text,) = [labels for name, labels in got if name == "__text__"]
    shown = "\n".join(
        line if line.startswith("#") else line.rsplit(" ", 1)[0] for line in text.splitlines()
    )
    for never in ("org-1", "+1555", "1555", queued.message_id, "m-1", API_KEY, SECRET):
        assert never not in shown, never

    # The stream's end is counted too.
    await until(lambda: scrape(http, gateway), lambda m: m.get(CURSOR_STREAMS) == 0)


async def test_metrics_are_off_by_default(gateway: Gateway) -> None:
    assert gateway.server.metrics is NO_METRICS
    assert gateway.server.metrics_port is None


def test_the_metrics_listener_refuses_a_non_loopback_address_without_insecure() -> None:
    for listen in ("0.0.0.0:9464", "192.0.2.10:9464", "[::]:9464"):
        with pytest.raises(SettingsError, match="metrics_listen"):
            load_settings({"metrics_listen": listen}, environ={})
        accepted = load_settings({"metrics_listen": listen, "insecure": True}, environ={})
        assert accepted.metrics_listen == listen
    for listen in ("127.0.0.1:9464", "[::1]:0", "localhost:9464"):
        assert load_settings({"metrics_listen": listen}, environ={}).metrics_listen == listen
    with pytest.raises(SettingsError, match="metrics_listen: expected HOST:PORT"):
        load_settings({"metrics_listen": "9464"}, environ={})


async def test_one_log_line_per_send_and_per_webhook_without_a_secret(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway: Gateway = await start_gateway(sidecar=True)
    await gateway.register(_definition(provider.url))
    installation = await gateway.enable(
        INTEGRATION, properties={"API key": API_KEY, "Webhook secret": SECRET}
    )
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    caplog.set_level(logging.INFO)
    caplog.clear()
    reply = await gateway.send(text="the text")
    provider.state.script("/messages", Answer(status=503, text="busy"), Answer())
    retried = await gateway.send(text="again")  # one retry, then sent
    assert await webhook(http, gateway, path, _message("m-1"), key=SECRET) == 200

    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    sends = [line for line in lines if line["msg"] == "send ended"]
    assert [(s["message_id"], s["outcome"]) for s in sends] == [
        (reply.message_id, "sent"),
        (retried.message_id, "retried"),
        (retried.message_id, "sent"),
    ]
    first = sends[0]
    assert first["integration"] == INTEGRATION
    assert first["code"] == "OK"
    assert first["provider_status"] == 200
    assert first["attempts"] == 1
    assert first["duration_ms"] >= 0
    assert (sends[1]["code"], sends[1]["provider_status"]) == ("UNAVAILABLE", 503)
    assert sends[2]["attempts"] == 2
    (hook,) = [line for line in lines if line["msg"] == "webhook ingested"]
    assert hook["integration"] == INTEGRATION
    assert (hook["outcome"], hook["events"], hook["duplicates"]) == ("matched", 1, 0)
    assert hook["duration_ms"] >= 0
    everything = "\n".join(formatter.format(r) for r in caplog.records)
    for never in (API_KEY, SECRET, "the text", "+15557654321", "Bearer", path.rsplit("/", 1)[1]):
        assert never not in everything, never
