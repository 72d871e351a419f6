"""The outbound client on real sockets on 127.0.0.1: the fake provider, counting listeners."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import trustme
from _clock import loop_clock

from server.demo import Answer, RunningFakeProvider, start_fake_provider
from server.engine import RenderedRequest
from server.outbound import (
    ConnectFailed,
    InvalidTarget,
    OutboundClient,
    OutboundPolicy,
    OutboundTimeout,
    PolicyRefused,
    TransportError,
    _client,
)

LOOPBACK = OutboundPolicy.from_strings(allow=["127.0.0.0/8", "::1"])


def request(
    url: str,
    *,
    method: str = "POST",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes | None = None,
) -> RenderedRequest:
    return RenderedRequest(method=method, url=url, headers=headers, body=body)


@dataclass
class CountingListener:
    """A TCP listener that counts connections and answers each with a minimal HTTP 200."""

    host: str
    port: int = 0
    connections: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def listener_v4() -> AsyncIterator[CountingListener]:
    listener = CountingListener("127.0.0.1")
    await listener.start()
    yield listener
    await listener.close()


@pytest.fixture
async def listener_v6() -> AsyncIterator[CountingListener]:
    listener = CountingListener("::1")
    await listener.start()
    yield listener
    await listener.close()


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    async with await start_fake_provider() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    async with OutboundClient(policy=LOOPBACK) as running:
        yield running


@pytest.fixture
def no_outside_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """A tripwire: any socket the client's guard would create to a non-loopback address fails the
    test before it connects, so a broken policy cannot send traffic off this machine."""
    attempts: list[object] = []

    class Tripwire:
        AF_INET = socket.AF_INET
        AF_INET6 = socket.AF_INET6
        AddressFamily = socket.AddressFamily

        @staticmethod
        def socket(**kwargs: object) -> socket.socket:
            attempts.append(kwargs)
            raise AssertionError("the client tried to open a socket")

    monkeypatch.setattr(_client, "socket", Tripwire)
    yield attempts
    assert attempts == []


# --- the SSRF matrix: refused calls make no connection; the operator's allow opens them ---

V4_FORMS = ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0x7f000001", "2130706433",
            "127.1", "017700000001", "0177.0.0.1"]  # fmt: skip


async def test_refused_calls_make_no_connection(
    listener_v4: CountingListener, listener_v6: CountingListener
) -> None:
    urls = [f"http://{host}:{listener_v4.port}/x" for host in V4_FORMS]
    urls.append(f"http://[::1]:{listener_v6.port}/x")
    async with OutboundClient() as client:
        for url in urls:
            with pytest.raises(PolicyRefused) as info:
                await client.send(request(url), timeout=5)
            assert info.value.may_have_been_sent is False
            assert "loopback" in info.value.reason
    assert listener_v4.connections == 0
    assert listener_v6.connections == 0


async def test_the_same_urls_work_when_the_operator_allows_loopback(
    listener_v4: CountingListener, listener_v6: CountingListener
) -> None:
    urls = [f"http://{host}:{listener_v4.port}/x" for host in V4_FORMS]
    async with OutboundClient(policy=LOOPBACK) as client:
        for url in urls:
            response = await client.send(request(url), timeout=5)
            assert (response.status, response.body) == (200, b"ok")
        response = await client.send(request(f"http://[::1]:{listener_v6.port}/x"), timeout=5)
        assert response.status == 200
    assert listener_v4.connections == len(urls)
    assert listener_v6.connections == 1


async def test_allowing_a_host_name_allows_only_that_name(listener_v4: CountingListener) -> None:
    policy = OutboundPolicy.from_strings(allow=["localhost"])
    async with OutboundClient(policy=policy) as client:
        response = await client.send(request(f"http://localhost:{listener_v4.port}/"), timeout=5)
        assert response.status == 200
        with pytest.raises(PolicyRefused):
            await client.send(request(f"http://127.0.0.1:{listener_v4.port}/"), timeout=5)
    assert listener_v4.connections == 1


async def test_denied_name_is_refused_even_when_its_address_is_allowed(
    listener_v4: CountingListener,
) -> None:
    policy = OutboundPolicy.from_strings(allow=["127.0.0.0/8"], deny=["localhost"])
    async with OutboundClient(policy=policy) as client:
        with pytest.raises(PolicyRefused):
            await client.send(request(f"http://localhost:{listener_v4.port}/"), timeout=5)
        assert (
            await client.send(request(f"http://127.0.0.1:{listener_v4.port}/"), timeout=5)
        ).status == 200
    assert listener_v4.connections == 1


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "100.64.0.1", "[fc00::1]", "10.0.0.1", "[::ffff:a9fe:a9fe]"]
)
async def test_non_loopback_classes_are_refused_before_any_socket(
    host: str, no_outside_sockets: list[object]
) -> None:
    async with OutboundClient() as client:
        with pytest.raises(PolicyRefused):
            await client.send(request(f"http://{host}/latest/meta-data/"), timeout=5)


async def test_socket_guard_alone_stops_a_connection_that_bypassed_the_other_checks(
    listener_v4: CountingListener,
) -> None:
    # A bare aiohttp session with only the guard: no resolver filter, no pre-flight check.
    connector = aiohttp.TCPConnector(socket_factory=_client._socket_guard(OutboundPolicy()))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://127.0.0.1:{listener_v4.port}/")
    assert isinstance(info.value.os_error, _client._RefusedSocket)
    assert info.value.os_error.refused.address == "127.0.0.1"
    assert listener_v4.connections == 0


async def test_a_redirect_to_a_refused_address_is_not_followed(
    fake: RunningFakeProvider, listener_v4: CountingListener
) -> None:
    fake.state.script(
        "/send",
        Answer(status=307, headers=(("Location", f"http://127.0.0.1:{listener_v4.port}/"),)),
    )
    port = fake.url.rsplit(":", 1)[1]
    policy = OutboundPolicy.from_strings(allow=["localhost"])
    async with OutboundClient(policy=policy, max_redirects=3) as client:
        with pytest.raises(PolicyRefused) as info:
            await client.send(request(f"http://localhost:{port}/send"), timeout=5)
    assert info.value.address == "127.0.0.1"
    assert len(fake.state.requests) == 1
    assert listener_v4.connections == 0


# --- round trips against the fake provider ---


async def test_request_and_answer_round_trip(
    fake: RunningFakeProvider, client: OutboundClient
) -> None:
    fake.state.script(
        "/v1/messages",
        Answer(status=201, json={"data": {"id": "{id}"}, "ok": True}, headers=(("X-Trace", "t1"),)),
    )
    body = json.dumps({"to": "+15550001111", "text": 'héllo 👋 "q"\n'}, ensure_ascii=False)
    response = await client.send(
        request(
            f"{fake.url}/v1/messages?a=1&a=2",
            headers=(
                ("Content-Type", "application/json; charset=utf-8"),
                ("Authorization", "Bearer s3cret"),
                ("X-Multi", "one"),
                ("X-Multi", "two"),
            ),
            body=body.encode(),
        ),
        timeout=5,
    )
    [received] = fake.state.requests
    assert (received.method, received.path, received.query) == (
        "POST",
        "/v1/messages",
        (("a", "1"), ("a", "2")),
    )
    assert received.body == body.encode()
    assert received.json == json.loads(body)
    assert received.header("content-type") == "application/json; charset=utf-8"
    assert received.header("Authorization") == "Bearer s3cret"
    assert [v for k, v in received.headers if k == "X-Multi"] == ["one", "two"]
    assert received.header("User-Agent") == "msgbridge"

    assert response.status == 201
    assert response.headers["x-trace"] == "t1"
    assert json.loads(response.body) == {"data": {"id": received.answer_id}, "ok": True}
    assert response.truncated is False
    assert response.elapsed_s > 0


async def test_get_without_body(fake: RunningFakeProvider, client: OutboundClient) -> None:
    response = await client.send(request(f"{fake.url}/status?id=%2Fx%20y", method="GET"), timeout=5)
    [received] = fake.state.requests
    assert (received.method, received.query, received.body) == ("GET", (("id", "/x y"),), b"")
    assert response.status == 200


async def test_error_statuses_are_answers_not_exceptions(
    fake: RunningFakeProvider, client: OutboundClient
) -> None:
    fake.state.script("/m", Answer(status=429, text="slow down", headers=(("Retry-After", "7"),)))
    response = await client.send(request(f"{fake.url}/m", body=b"{}"), timeout=5)
    assert (response.status, response.body, response.headers["Retry-After"]) == (
        429,
        b"slow down",
        "7",
    )


async def test_redirects_are_not_followed_by_default(
    fake: RunningFakeProvider, client: OutboundClient
) -> None:
    fake.state.script("/old", Answer(status=302, headers=(("Location", "/new"),)))
    response = await client.send(request(f"{fake.url}/old", body=b"x"), timeout=5)
    assert response.status == 302
    assert [r.path for r in fake.state.requests] == ["/old"]


async def test_followed_redirects_keep_or_drop_the_body_by_status(
    fake: RunningFakeProvider,
) -> None:
    fake.state.script("/307", Answer(status=307, headers=(("Location", "/kept"),)))
    fake.state.script("/303", Answer(status=303, headers=(("Location", "/dropped"),)))
    async with OutboundClient(policy=LOOPBACK, max_redirects=2) as client:
        headers = (("Content-Type", "text/plain"),)
        kept = await client.send(request(f"{fake.url}/307", headers=headers, body=b"b"), timeout=5)
        dropped = await client.send(
            request(f"{fake.url}/303", headers=headers, body=b"b"), timeout=5
        )
    assert (kept.status, dropped.status) == (200, 200)
    by_path = {r.path: r for r in fake.state.requests}
    assert (by_path["/kept"].method, by_path["/kept"].body) == ("POST", b"b")
    assert (by_path["/dropped"].method, by_path["/dropped"].body) == ("GET", b"")
    assert by_path["/dropped"].header("Content-Type") is None


async def test_redirect_to_another_origin_drops_credentials(fake: RunningFakeProvider) -> None:
    async with await start_fake_provider() as other:
        fake.state.script("/r", Answer(status=308, headers=(("Location", f"{other.url}/t"),)))
        async with OutboundClient(policy=LOOPBACK, max_redirects=1) as client:
            auth = (("Authorization", "Bearer s3cret"), ("X-Keep", "1"))
            response = await client.send(request(f"{fake.url}/r", headers=auth), timeout=5)
        [first] = fake.state.requests
        [second] = other.state.requests
    assert response.status == 200
    assert first.header("Authorization") == "Bearer s3cret"
    assert second.header("Authorization") is None
    assert second.header("X-Keep") == "1"


async def test_redirects_are_capped(fake: RunningFakeProvider) -> None:
    fake.state.script("/loop", Answer(status=302, headers=(("Location", "/loop"),)))
    async with OutboundClient(policy=LOOPBACK, max_redirects=2) as client:
        response = await client.send(request(f"{fake.url}/loop", method="GET"), timeout=5)
    assert response.status == 302
    assert len(fake.state.requests) == 3


# --- failures ---


async def test_slow_answer_times_out_as_maybe_sent(
    fake: RunningFakeProvider, client: OutboundClient
) -> None:
    fake.state.script("/slow", Answer(delay_s=3600))
    with loop_clock() as clock:
        sending = asyncio.create_task(
            client.send(request(f"{fake.url}/slow", body=b"x"), timeout=30)
        )
        async with asyncio.timeout(30):
            await fake.state.wait_for_requests(1)
        clock.advance(60)  # the deadline passes once the provider has the request
        with pytest.raises(OutboundTimeout) as info:
            await sending
    assert info.value.may_have_been_sent is True
    assert len(fake.state.requests) == 1  # it was indeed received


async def test_waiting_for_a_pooled_connection_times_out_as_not_sent(
    fake: RunningFakeProvider,
) -> None:
    # The only connection is busy until the provider answers, well after the second send's
    # deadline: the clock is moved past that deadline, then past the answer's delay.
    fake.state.script("/slow", Answer(delay_s=600))
    async with OutboundClient(policy=LOOPBACK, max_connections=1) as client:
        with loop_clock() as clock:
            first = asyncio.create_task(client.send(request(f"{fake.url}/slow"), timeout=3600))
            async with asyncio.timeout(30):
                await fake.state.wait_for_requests(1)
            waiting = asyncio.create_task(client.send(request(f"{fake.url}/other"), timeout=30))
            await asyncio.sleep(0)  # its first step sets its deadline (and waits for the pool)
            clock.advance(60)
            with pytest.raises(OutboundTimeout) as info:
                await waiting
            assert info.value.may_have_been_sent is False
            clock.advance(600)
            assert (await first).status == 200
    assert [r.path for r in fake.state.requests] == ["/slow"]


async def test_connection_refused_is_connect_failed() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OutboundClient(policy=LOOPBACK) as client:
        with pytest.raises(ConnectFailed) as info:
            await client.send(request(f"http://127.0.0.1:{port}/x"), timeout=5)
    assert info.value.may_have_been_sent is False
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_dns_failure_is_connect_failed() -> None:
    class FailingResolver(aiohttp.abc.AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[aiohttp.abc.ResolveResult]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        async def close(self) -> None:
            pass

    async with OutboundClient(resolver=FailingResolver()) as client:
        with pytest.raises(ConnectFailed, match=r"could not resolve nowhere\.test"):
            await client.send(request("http://nowhere.test/x"), timeout=5)


async def test_connection_closed_mid_request_is_transport_error(
    fake: RunningFakeProvider, client: OutboundClient
) -> None:
    fake.state.script("/drop", Answer(close=True))
    with pytest.raises(TransportError) as info:
        await client.send(request(f"{fake.url}/drop", body=b"x"), timeout=5)
    assert info.value.may_have_been_sent is True
    assert len(fake.state.requests) == 1


async def test_response_body_is_capped(fake: RunningFakeProvider) -> None:
    fake.state.script("/big", Answer(text="x" * 5000))
    fake.state.script("/exact", Answer(text="y" * 1000))
    async with OutboundClient(policy=LOOPBACK, max_response_bytes=1000) as client:
        big = await client.send(request(f"{fake.url}/big"), timeout=5)
        exact = await client.send(request(f"{fake.url}/exact"), timeout=5)
        after = await client.send(request(f"{fake.url}/after"), timeout=5)
    assert (big.body, big.truncated) == (b"x" * 1000, True)
    assert (exact.body, exact.truncated) == (b"y" * 1000, False)
    assert after.status == 200  # the cut connection was not reused


async def test_https_with_the_configured_trust_and_without_it() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with await start_fake_provider(ssl_context=server_context) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        async with OutboundClient(policy=LOOPBACK, ssl_context=client_context) as client:
            response = await client.send(request(f"{fake.url}/tls", body=b"x"), timeout=5)
        async with OutboundClient(policy=LOOPBACK) as untrusting:
            with pytest.raises(ConnectFailed) as info:
                await untrusting.send(request(f"{fake.url}/tls", body=b"y"), timeout=5)
        assert response.status == 200
        assert info.value.may_have_been_sent is False
        assert [r.body for r in fake.state.requests] == [b"x"]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "/relative/path", "http:///nohost", "::"])
async def test_uncallable_urls_are_invalid_targets(url: str, client: OutboundClient) -> None:
    with pytest.raises(InvalidTarget):
        await client.send(request(url), timeout=5)


async def test_send_before_start_is_a_programming_error() -> None:
    client = OutboundClient()
    with pytest.raises(RuntimeError, match="not started"):
        await client.send(request("http://127.0.0.1/"), timeout=1)


async def test_no_header_body_or_path_secret_is_logged(
    fake: RunningFakeProvider, client: OutboundClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.state.script("/x/s3cret-path", Answer(status=401, text="denied s3cret-answer"))
    caplog.set_level(logging.DEBUG)
    await client.send(
        request(
            f"{fake.url}/x/s3cret-path?key=s3cret-query",
            headers=(("Authorization", "Bearer s3cret-header"),),
            body=b"s3cret-body",
        ),
        timeout=5,
    )
    with pytest.raises(TransportError) as info:
        fake.state.script("/x/s3cret-path", Answer(close=True))
        await client.send(request(f"{fake.url}/x/s3cret-path?key=s3cret-query"), timeout=5)
    assert "s3cret" not in str(info.value)
    assert any("answered 401" in r.getMessage() for r in caplog.records)
    assert "s3cret" not in caplog.text
