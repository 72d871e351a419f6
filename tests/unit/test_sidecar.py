"""The webhook sidecar over real sockets on 127.0.0.1: forwarding, verdicts, limits, the core's
availability, health, logging, and the gRPC forwarder against a real grpc.aio server."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import grpc
import pytest
from _clock import loop_clock
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc
from server.sidecar import (
    CoreUnavailable,
    Delivery,
    GrpcIngestForwarder,
    Header,
    IngestHandler,
    SidecarServer,
    Verdict,
    build_sidecar_app,
    delivery_of,
    split_host_port,
)

PUBLIC_URL = "https://hooks.example.com/base/"
MAX_BODY = 1000
# Generous, so that a request that must get through never meets it on a busy machine; the
# tests that are about the deadline use SHORT_TIMEOUT_S (meeting it is what they expect, and a
# busy machine only makes that later) or move the loop's clock past it.
TIMEOUT_S = 20.0
SHORT_TIMEOUT_S = 0.5


class Recorder:
    """An ingest handler that keeps every delivery and answers with a fixed verdict."""

    def __init__(self, verdict: Verdict | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.verdict = verdict or Verdict(http_status=200, body=b"ok", content_type="text/plain")

    async def ingest(self, delivery: Delivery) -> Verdict:
        self.deliveries.append(delivery)
        return self.verdict


Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a sidecar around a handler on a free port; every one is stopped at the end."""
    servers: list[SidecarServer] = []

    async def start(handler: IngestHandler, **options: Any) -> int:
        settings: dict[str, Any] = {
            "public_url": PUBLIC_URL,
            "max_body": MAX_BODY,
            "request_timeout_s": TIMEOUT_S,
        }
        settings.update(options)
        app = build_sidecar_app(handler, **settings)
        server = SidecarServer(app, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        await server.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def exchange(port: int, data: bytes, *, then: bytes = b"", pause: float = 0) -> bytes:
    """Send raw bytes (and, after ``pause`` seconds, ``then``); everything read until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
            writer.write(then)
            await writer.drain()
        async with asyncio.timeout(15):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# -- forwarding ------------------------------------------------------------------------------


async def test_post_json_is_forwarded_raw_and_answered_with_the_verdict(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    verdict = Verdict(
        http_status=202, body=b"<Response/>", content_type="application/xml", events=1
    )
    recorder = Recorder(verdict)
    port = await serve(recorder)
    body = b'{"from": "+15550001111", "text": "hi \\u00e9"}'
    async with http.post(
        f"http://127.0.0.1:{port}/webhooks/acme/AbC_tok-en?sig=a%2Bb&x=1&x=2",
        data=body,
        headers=[
            ("Content-Type", "application/json"),
            ("X-Signature", "s1"),
            ("X-Signature", "s2"),
        ],
    ) as response:
        assert response.status == 202
        assert response.headers["Content-Type"] == "application/xml"
        assert await response.read() == b"<Response/>"

    [delivery] = recorder.deliveries
    assert delivery.method == "POST"
    assert delivery.path == "/webhooks/acme/AbC_tok-en"
    assert delivery.query == "sig=a%2Bb&x=1&x=2"
    assert delivery.body == body
    assert delivery.url == (
        "https://hooks.example.com/base/webhooks/acme/AbC_tok-en?sig=a%2Bb&x=1&x=2"
    )
    assert delivery.remote_addr == "127.0.0.1"
    headers = [(h.name, h.value) for h in delivery.headers]
    assert [v for n, v in headers if n == "X-Signature"] == ["s1", "s2"]
    assert ("Content-Type", "application/json") in headers
    assert ("Content-Length", str(len(body))) in headers
    assert any(n == "Host" for n, _ in headers)


async def test_form_post_keeps_the_encoded_body_and_its_content_type(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    form = {"From": "+15550001111", "Body": "hello there & more"}
    async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=form) as response:
        assert response.status == 200
        assert await response.text() == "ok"
    [delivery] = recorder.deliveries
    assert delivery.path == "/webhooks/acme"
    assert delivery.query == ""
    assert delivery.url == "https://hooks.example.com/base/webhooks/acme"
    assert delivery.body == b"From=%2B15550001111&Body=hello+there+%26+more"
    headers = {h.name.lower(): h.value for h in delivery.headers}
    assert headers["content-type"] == "application/x-www-form-urlencoded"


async def test_get_with_query_keeps_the_raw_path_and_query_string(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    response = await exchange(
        port,
        b"GET /webhooks/acme/tok%7E1?From=%2B15550001111&Body=hi+there&empty= HTTP/1.1\r\n"
        b"Host: hooks.example.com\r\nConnection: close\r\n\r\n",
    )
    assert status_of(response) == 200
    [delivery] = recorder.deliveries
    assert delivery.method == "GET"
    assert delivery.path == "/webhooks/acme/tok%7E1"  # as received, not re-encoded
    assert delivery.query == "From=%2B15550001111&Body=hi+there&empty="
    assert delivery.body == b""
    assert delivery.url.endswith("/webhooks/acme/tok%7E1?From=%2B15550001111&Body=hi+there&empty=")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_any_method_is_forwarded(
    serve: Serve, http: aiohttp.ClientSession, method: str
) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    async with http.request(
        method, f"http://127.0.0.1:{port}/webhooks/acme/tok", data=b"payload"
    ) as response:
        assert response.status == 200
    [delivery] = recorder.deliveries
    assert delivery.method == method
    assert delivery.body == b"payload"


async def test_oauth_callback_is_forwarded_like_a_webhook(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    verdict = Verdict(http_status=302, content_type="text/html", body=b"")
    recorder = Recorder(verdict)
    port = await serve(recorder)
    async with http.get(
        f"http://127.0.0.1:{port}/oauth/callback?code=abc&state=xyz", allow_redirects=False
    ) as response:
        assert response.status == 302
    [delivery] = recorder.deliveries
    assert (delivery.path, delivery.query) == ("/oauth/callback", "code=abc&state=xyz")


async def test_a_body_of_exactly_max_body_is_accepted(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    body = b"x" * MAX_BODY
    async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=body) as response:
        assert response.status == 200
    assert recorder.deliveries[0].body == body


async def test_a_chunked_body_is_forwarded_whole(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    response = await exchange(
        port,
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    assert status_of(response) == 200
    assert recorder.deliveries[0].body == b"hello world"


async def test_keep_alive_connection_serves_a_second_request_after_idling(serve: Serve) -> None:
    # The head deadline starts with a request's first byte, not with the connection: an idle
    # keep-alive connection is not answered 408.
    recorder = Recorder()
    port = await serve(recorder)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
        writer.write(request + b"one")
        async with asyncio.timeout(15):
            head = await reader.readuntil(b"\r\n\r\n")
            assert status_of(head) == 200
            await reader.readexactly(2)  # "ok"
        # Idle for three deadlines (within the keep-alive timeout): the loop's clock is moved
        # on, and the timers due by then run, before the second request is sent.
        with loop_clock() as clock:
            clock.advance(TIMEOUT_S * 3)
            await asyncio.sleep(0)
            writer.write(request + b"two")
            async with asyncio.timeout(15):
                head = await reader.readuntil(b"\r\n\r\n")
                assert status_of(head) == 200
    finally:
        writer.close()
        await writer.wait_closed()
    assert [d.body for d in recorder.deliveries] == [b"one", b"two"]


# -- verdicts --------------------------------------------------------------------------------


async def test_a_no_content_verdict_has_no_body(serve: Serve, http: aiohttp.ClientSession) -> None:
    port = await serve(Recorder(Verdict(http_status=204, body=b"ignored")))
    async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=b"{}") as response:
        assert response.status == 204
        assert await response.read() == b""


@pytest.mark.parametrize("status", [0, 99, 600])
async def test_a_verdict_without_a_valid_status_is_a_500(
    serve: Serve, http: aiohttp.ClientSession, status: int
) -> None:
    port = await serve(Recorder(Verdict(http_status=status)))
    async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=b"{}") as response:
        assert response.status == 500


# -- limits ----------------------------------------------------------------------------------


async def test_a_declared_body_over_the_limit_is_413_without_reading_it(serve: Serve) -> None:
    recorder = Recorder()
    # The answer is read to the end of the connection, which lingers for the body that never
    # comes at most the request deadline: a short one (it is met after the answer, if at all).
    port = await serve(recorder, request_timeout_s=SHORT_TIMEOUT_S)
    response = await exchange(
        port,
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    )
    assert status_of(response) == 413
    assert recorder.deliveries == []


async def test_a_chunked_body_over_the_limit_is_413(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    chunk = b"a" * 300
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    response = await exchange(
        port,
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
    )
    assert status_of(response) == 413
    assert recorder.deliveries == []


async def test_a_broken_chunked_body_is_400(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    response = await exchange(
        port,
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nabcd\r\nzz\r\nnot a chunk\r\n0\r\n\r\n",
    )
    assert status_of(response) == 400
    assert recorder.deliveries == []


async def test_a_chunked_body_over_the_limit_from_the_aiohttp_client_is_413(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    recorder = Recorder()
    port = await serve(recorder)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"b" * 200

    async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=body()) as response:
        assert response.status == 413
    assert recorder.deliveries == []


def gzip_bomb(inflated: int) -> bytes:
    """A gzip body about a thousandth the size of the ``inflated`` zero bytes it inflates to.

    One compressed MiB, flushed so that it stands alone, is repeated; the trailer's checksum is
    not right, and need not be: a reader that inflates runs out of memory long before it."""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + again * (inflated // len(zeros) - 1) + compressor.flush()


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "br", "zstd", "identity, GZIP"])
async def test_a_compressed_body_is_415_and_never_inflated(serve: Serve, coding: str) -> None:
    recorder = Recorder()
    max_body = 1 << 20
    port = await serve(recorder, max_body=max_body, request_timeout_s=30)
    body = gzip_bomb(1000 << 20)  # a gigabyte
    assert len(body) < max_body
    head = (
        "POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Encoding: {coding}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    tracemalloc.start()
    try:
        response = await exchange(port, head.encode() + body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status_of(response) == 415
    assert recorder.deliveries == []
    # The request itself is in memory once or twice (sent and received); an inflation is not.
    assert peak < 2 * max_body + (8 << 20), f"{peak >> 20} MiB while refusing the body"


async def test_an_identity_content_encoding_is_forwarded(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    headers = {"Content-Encoding": "identity", "Content-Type": "application/json"}
    async with http.post(
        f"http://127.0.0.1:{port}/webhooks/acme", data=b"{}", headers=headers
    ) as response:
        assert response.status == 200
    assert [d.body for d in recorder.deliveries] == [b"{}"]


async def test_a_header_line_over_the_limit_is_431(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder, max_field_size=200)
    response = await exchange(
        port, b"GET /webhooks/acme HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 300 + b"\r\n\r\n"
    )
    assert status_of(response) == 431
    assert recorder.deliveries == []


async def test_too_many_header_fields_is_431(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder, max_headers=10)
    fields = b"".join(b"X-Field-%d: v\r\n" % i for i in range(12))
    response = await exchange(
        port, b"GET /webhooks/acme HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    )
    assert status_of(response) == 431
    assert recorder.deliveries == []


async def test_headers_within_the_limits_pass_and_the_sidecar_serves_after_a_431(
    serve: Serve,
) -> None:
    recorder = Recorder()
    port = await serve(recorder, max_field_size=200, max_headers=10)
    refused = await exchange(port, b"GET /webhooks/a HTTP/1.1\r\nX: " + b"v" * 201 + b"\r\n\r\n")
    assert status_of(refused) == 431
    fields = b"".join(b"X-Field-%d: v\r\n" % i for i in range(7))  # 10 in all
    response = await exchange(
        port,
        b"GET /webhooks/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: "
        + b"v" * 150
        + b"\r\n"
        + fields
        + b"\r\n",
    )
    assert status_of(response) == 200
    assert len(recorder.deliveries) == 1


async def test_a_malformed_request_is_400(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    response = await exchange(port, b"POST /webhooks/a HTTP/1.1\r\nBad Header\r\n\r\n")
    assert status_of(response) == 400
    assert recorder.deliveries == []


async def test_a_client_that_stops_sending_its_head_gets_408(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder, request_timeout_s=SHORT_TIMEOUT_S)
    response = await exchange(port, b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nX-Slo")
    assert status_of(response) == 408
    assert recorder.deliveries == []


async def test_a_client_that_stops_sending_its_body_gets_408(serve: Serve) -> None:
    recorder = Recorder()
    port = await serve(recorder, request_timeout_s=SHORT_TIMEOUT_S)
    response = await exchange(
        port, b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
    )
    assert status_of(response) == 408
    assert recorder.deliveries == []


async def test_a_body_trickling_past_the_deadline_gets_408(serve: Serve) -> None:
    # Each piece arrives well within the timeout; the request as a whole does not.
    recorder = Recorder()
    port = await serve(recorder, request_timeout_s=SHORT_TIMEOUT_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        response = b""
        async with asyncio.timeout(15):
            for _ in range(100):
                writer.write(b"z")
                await writer.drain()
                try:
                    response = await asyncio.wait_for(reader.read(65536), SHORT_TIMEOUT_S / 4)
                except TimeoutError:
                    continue
                response += await reader.read()
                break
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_of(response) == 408
    assert recorder.deliveries == []


@pytest.mark.parametrize(
    "path", ["/", "/webhooks", "/webhooks/", "/webhooks/a/b/c", "/webhook/a", "/oauth"]
)
async def test_unknown_paths_are_404(serve: Serve, http: aiohttp.ClientSession, path: str) -> None:
    recorder = Recorder()
    port = await serve(recorder)
    async with http.post(f"http://127.0.0.1:{port}{path}", data=b"{}") as response:
        assert response.status == 404
    assert recorder.deliveries == []


# -- the core's availability -----------------------------------------------------------------


class Unavailable:
    async def ingest(self, delivery: Delivery) -> Verdict:
        raise CoreUnavailable(retry_after_s=7)


class CrashesOnce(Recorder):
    async def ingest(self, delivery: Delivery) -> Verdict:
        if not self.deliveries:
            self.deliveries.append(delivery)
            raise RuntimeError(f"boom with {delivery.body!r}")
        return await super().ingest(delivery)


async def test_core_unavailable_is_503_with_retry_after(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    port = await serve(Unavailable())
    async with http.post(f"http://127.0.0.1:{port}/webhooks/acme/tok", data=b"{}") as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"


async def test_a_crashing_handler_is_500_and_the_next_request_is_served(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    handler = CrashesOnce()
    port = await serve(handler)
    url = f"http://127.0.0.1:{port}/webhooks/acme"
    async with http.post(url, data=b"first") as response:
        assert response.status == 500
    async with http.post(url, data=b"second") as response:
        assert response.status == 200
    assert [d.body for d in handler.deliveries] == [b"first", b"second"]


# -- health ----------------------------------------------------------------------------------


async def test_healthz_and_readyz_without_a_readiness_check(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    port = await serve(Recorder())
    for path in ("/healthz", "/readyz"):
        async with http.get(f"http://127.0.0.1:{port}{path}") as response:
            assert response.status == 200


async def test_readyz_follows_the_readiness_check(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    state: dict[str, Any] = {"ready": False}

    async def readiness() -> bool:
        if state["ready"] is None:
            raise OSError("no route")
        return bool(state["ready"])

    port = await serve(Recorder(), readiness=readiness)
    for ready, expected in ((False, 503), (True, 200), (None, 503)):
        state["ready"] = ready
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == expected
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200


# -- logging ---------------------------------------------------------------------------------


async def test_logs_never_carry_paths_tokens_headers_or_bodies(
    serve: Serve, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = await serve(CrashesOnce(), max_field_size=300)
    url = f"http://127.0.0.1:{port}/webhooks/acme/TOKENSECRET?q=QUERYSECRET"
    headers = {"X-Auth": "HEADERSECRET"}
    async with http.post(url, data=b"BODYSECRET1", headers=headers) as response:
        assert response.status == 500
    async with http.post(url, data=b"BODYSECRET2", headers=headers) as response:
        assert response.status == 200
    refused = await exchange(
        port, b"GET /webhooks/acme/TOKENSECRET HTTP/1.1\r\nX: HEADERSECRET" + b"v" * 400 + b"\r\n"
    )
    assert status_of(refused) == 431

    texts = [
        record.getMessage() + repr(record.__dict__) + str(record.exc_text)
        for record in caplog.records
    ]
    assert any("acme" in text for text in texts)  # the integration id is logged
    for secret in ("TOKENSECRET", "QUERYSECRET", "HEADERSECRET", "BODYSECRET", "/webhooks"):
        assert not any(secret in text for text in texts), secret


# -- the gRPC forwarder ----------------------------------------------------------------------


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self) -> None:
        self.deliveries: list[ingest_pb2.WebhookDelivery] = []
        self.metadata: list[dict[str, str]] = []
        self.abort_with: grpc.StatusCode | None = None

    async def IngestWebhook(
        self, request: ingest_pb2.WebhookDelivery, context: Any
    ) -> ingest_pb2.WebhookVerdict:
        self.metadata.append(dict(context.invocation_metadata()))
        if self.abort_with is not None:
            await context.abort(self.abort_with, "refused")
        self.deliveries.append(request)
        return ingest_pb2.WebhookVerdict(
            http_status=201, body=b"stored:" + request.body, content_type="text/plain", events=1
        )


@pytest.fixture
async def core() -> AsyncIterator[tuple[IngestService, str]]:
    """A real grpc.aio server on a free port with the Ingest service and health checking."""
    server = grpc.aio.server()
    service = IngestService()
    ingest_pb2_grpc.add_IngestServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield service, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


async def test_forwarder_round_trip_with_token(core: tuple[IngestService, str]) -> None:
    service, target = core
    forwarder = GrpcIngestForwarder(target, token="core-secret", timeout_s=5)
    try:
        delivery = Delivery(
            method="POST",
            path="/webhooks/acme/tok",
            query="a=1",
            headers=(Header("X-A", "1"),) * 2,
            body=b"\x00\xffbinary",
            url="https://hooks.example.com/webhooks/acme/tok?a=1",
            remote_addr="127.0.0.1",
        )
        verdict = await forwarder.ingest(delivery)
        assert await forwarder.ready() is True
    finally:
        await forwarder.aclose()
    assert [delivery_of(message) for message in service.deliveries] == [delivery]
    assert service.metadata[0]["authorization"] == "Bearer core-secret"
    assert (verdict.http_status, verdict.body, verdict.events) == (
        201,
        b"stored:\x00\xffbinary",
        1,
    )
    assert "core-secret" not in repr(forwarder)


async def test_sidecar_through_the_forwarder_to_a_grpc_core(
    core: tuple[IngestService, str], serve: Serve, http: aiohttp.ClientSession
) -> None:
    service, target = core
    forwarder = GrpcIngestForwarder(target, timeout_s=5)
    try:
        port = await serve(forwarder, readiness=forwarder.ready)
        async with http.post(
            f"http://127.0.0.1:{port}/webhooks/acme/tok?x=1", data=b'{"a": 1}'
        ) as response:
            assert response.status == 201
            assert response.headers["Content-Type"] == "text/plain"
            assert await response.read() == b'stored:{"a": 1}'
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200
    finally:
        await forwarder.aclose()
    [delivery] = service.deliveries
    assert (delivery.method, delivery.path, delivery.query) == ("POST", "/webhooks/acme/tok", "x=1")


async def test_forwarder_to_a_closed_port_is_core_unavailable_and_503(
    closed_port: int, serve: Serve, http: aiohttp.ClientSession
) -> None:
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{closed_port}", timeout_s=5, retry_after_s=3)
    try:
        with pytest.raises(CoreUnavailable):
            await forwarder.ingest(Delivery(method="POST"))
        assert await forwarder.ready() is False
        port = await serve(forwarder, readiness=forwarder.ready)
        async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=b"{}") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "3"
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 503
    finally:
        await forwarder.aclose()


@pytest.mark.parametrize(
    ("code", "sidecar_status"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNAUTHENTICATED, 500),
    ],
)
async def test_the_cores_refusals_map_to_retry_or_failure(
    core: tuple[IngestService, str],
    serve: Serve,
    http: aiohttp.ClientSession,
    code: grpc.StatusCode,
    sidecar_status: int,
) -> None:
    service, target = core
    service.abort_with = code
    forwarder = GrpcIngestForwarder(target, timeout_s=5)
    try:
        port = await serve(forwarder)
        async with http.post(f"http://127.0.0.1:{port}/webhooks/acme", data=b"{}") as response:
            assert response.status == sidecar_status
    finally:
        await forwarder.aclose()


async def test_a_core_slower_than_the_deadline_is_core_unavailable() -> None:
    never = asyncio.Event()

    class Slow(ingest_pb2_grpc.IngestServicer):
        async def IngestWebhook(
            self, request: ingest_pb2.WebhookDelivery, context: Any
        ) -> ingest_pb2.WebhookVerdict:
            await never.wait()  # answers after any deadline, however busy the machine
            return ingest_pb2.WebhookVerdict(http_status=200)

    server = grpc.aio.server()
    ingest_pb2_grpc.add_IngestServicer_to_server(Slow(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{port}", timeout_s=0.2)
    try:
        with pytest.raises(CoreUnavailable):
            await forwarder.ingest(Delivery(method="POST"))
    finally:
        await forwarder.aclose()
        await server.stop(None)


# -- small pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), ("host:1", ("host", 1))],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:x", "host:70000"])
def test_split_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port(text)


@pytest.mark.parametrize(
    "options",
    [{"max_body": -1}, {"request_timeout_s": 0}, {"max_field_size": 0}, {"max_headers": 0}],
)
def test_build_refuses_bad_limits(options: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"public_url": PUBLIC_URL, "max_body": 10, "request_timeout_s": 1}
    settings.update(options)
    with pytest.raises(ValueError):
        build_sidecar_app(Recorder(), **settings)
