"""Slow clients and many connections: slowloris heads and bodies, hundreds of idle connections,
many requests at once.

The servers run with a 3 s webhook timeout (``--webhook-timeout-s 3``; the separate sidecar
``--timeout 3``): a request not received by then is answered 408 and its connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from msgbridge.v1 import gateway_pb2

from ._case import Cases, expect, expect_status
from ._env import ACME_NUMBER, Env, message_webhook
from ._raw import exchange, head, trickle

__all__ = ["CASES"]

cases = Cases("slow")
CASES = cases.all

# Long past the 3 s timeout, yet bounded: a server that never times out fails the case here.
_WAIT_S = 12.0
_PAUSE_S = 0.3


def _port(env: Env, where: str) -> int:
    if where == "sidecar":
        assert env.sidecar is not None
        return env.sidecar.http_port
    return env.core.http_port


def _answer(status: str, closed: bool) -> str:
    expect(closed, f"the connection was still open after {_WAIT_S:.0f} s")
    return expect_status(int(status) if status.isdigit() else status, (408,))


for _where in ("core", "sidecar"):

    async def _head(env: Env, where: str = _where) -> str:
        data = head(env.path()) + b"X-Slow: " + b"a" * 1000
        return _answer(*await trickle(_port(env, where), data, pause_s=_PAUSE_S, timeout_s=_WAIT_S))

    async def _body(env: Env, where: str = _where) -> str:
        body = message_webhook(ACME_NUMBER, "slow body")
        data = [head(env.path(), f"Content-Length: {len(body)}", "Content-Type: application/json")]
        data += [body[i : i + 1] for i in range(len(body))]
        return _answer(
            *await exchange(_port(env, where), data, pause_s=_PAUSE_S, timeout_s=_WAIT_S)
        )

    async def _silent_body(env: Env, where: str = _where) -> str:
        data = [head(env.path(), "Content-Length: 1000", "Content-Type: application/json")]
        return _answer(*await exchange(_port(env, where), data, timeout_s=_WAIT_S))

    async def _chunked_body(env: Env, where: str = _where) -> str:
        data = [head(env.path(), "Transfer-Encoding: chunked", "Content-Type: application/json")]
        data += [b"1\r\n{\r\n"] * 200
        return _answer(
            *await exchange(_port(env, where), data, pause_s=_PAUSE_S, timeout_s=_WAIT_S)
        )

    cases.add(f"slowloris-head-{_where}", _head)
    cases.add(f"slowloris-body-{_where}", _body)
    cases.add(f"body-never-sent-{_where}", _silent_body)
    cases.add(f"slowloris-chunked-body-{_where}", _chunked_body)


@cases.case("slowloris-head-x100-parallel")
async def _many_slow(env: Env) -> str:
    data = head(env.path()) + b"X-Slow: " + b"a" * 1000
    results = await asyncio.gather(
        *(trickle(env.core.http_port, data, pause_s=1.0, timeout_s=_WAIT_S) for _ in range(100))
    )
    for status, closed in results:
        _answer(status, closed)
    return "100x408"


async def _hold_idle(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


async def _good_webhook_meanwhile(env: Env) -> None:
    status = await env.post(
        env.core_url(env.path()),
        message_webhook(ACME_NUMBER, "while others idle"),
        {"Content-Type": "application/json"},
    )
    expect(status == 200, f"a good webhook meanwhile answered {status}")


for _where in ("core", "sidecar"):

    async def _idle(env: Env, where: str = _where) -> str:
        """500 connections that send nothing while a good webhook is served.

        When the server closes them is not judged here, only what every case is judged on: today
        a connection that never sends a byte stays open for aiohttp's keep-alive timeout (75 s),
        whatever the webhook timeout.
        """
        writers = await _hold_idle(_port(env, where), 500)
        try:
            await _good_webhook_meanwhile(env)
        finally:
            for writer in writers:
                writer.close()
        return "served"

    cases.add(f"500-idle-connections-{_where}", _idle)


@cases.case("300-idle-grpc-connections")
async def _idle_grpc(env: Env) -> str:
    port = int(env.core.target.rsplit(":", 1)[1])
    writers = await _hold_idle(port, 300)
    try:
        result = await env.gateway.call(
            "ListIntegrations", gateway_pb2.ListIntegrationsRequest(page_size=1), env.tokens.read
        )
        expect(result.code == "OK", f"ListIntegrations meanwhile: {result.code}")
    finally:
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    return "OK"


@cases.case("200-parallel-webhooks")
async def _parallel(env: Env) -> str:
    body = message_webhook(ACME_NUMBER, "parallel")
    statuses = await asyncio.gather(
        *(
            env.post(env.core_url(env.path()), body, {"Content-Type": "application/json"})
            for _ in range(200)
        )
    )
    expect(set(statuses) == {200}, f"statuses {sorted(set(statuses))}")
    return "200x200"


@cases.case("200-parallel-unmatched-webhooks-sidecar")
async def _parallel_sidecar(env: Env) -> str:
    body = json.dumps({"nothing": "x" * 10_000}).encode()
    statuses = await asyncio.gather(
        *(
            env.post(env.sidecar_url("/webhooks/demo"), body, {"Content-Type": "application/json"})
            for _ in range(200)
        )
    )
    expect(set(statuses) == {200}, f"statuses {sorted(set(statuses))}")
    return "200x200"


@cases.case("100-parallel-get-integration")
async def _parallel_grpc(env: Env) -> str:
    request = gateway_pb2.GetIntegrationRequest(integration_id="demo")
    results = await asyncio.gather(
        *(env.gateway.call("GetIntegration", request, env.tokens.read) for _ in range(100))
    )
    codes = {result.code for result in results}
    expect(codes == {"OK"}, f"codes {sorted(codes)}")
    return "100xOK"
