"""The hostile provider: an HTTP server on 127.0.0.1 that answers a send as the send's text says.

A definition points its SendMessage at ``http://HOST:PORT/messages`` with the text as ``content``;
the text names the behaviour (``huge``, ``slow-body``, ``echo-secret-400`` …, see
:data:`BEHAVIOURS`). Every answer is bounded in size and time, even those meant never to end:
they stop after :data:`_LONGEST_S` or when the caller hangs up.

A trap listens on 127.0.0.2 (a loopback address the outbound policy does not allow) and counts
the connections it gets: a redirect to it must be refused without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ._payloads import MIB, deep_json, gzip_bomb

__all__ = ["BEHAVIOURS", "HostileProvider"]

_LONGEST_S = 20.0
_ID = {"data": {"id": "hostile-1"}}

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


async def _ok(request: web.Request, secret: str) -> web.StreamResponse:
    return web.json_response(_ID)


async def _stream(
    request: web.Request, chunk: bytes, *, pause_s: float, limit: int, **headers: str
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    sent = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + _LONGEST_S
    with contextlib.suppress(ConnectionError):
        while sent < limit and loop.time() < until:
            await response.write(chunk)
            sent += len(chunk)
            await asyncio.sleep(pause_s)
    return response


async def _huge(request: web.Request, secret: str) -> web.StreamResponse:
    return await _stream(
        request, b"x" * 65536, pause_s=0, limit=256 * MIB, **{"Content-Type": "application/json"}
    )


async def _huge_declared(request: web.Request, secret: str) -> web.StreamResponse:
    # Claims 8 GiB; sends at most 64 MiB.
    return await _stream(
        request, b"y" * 65536, pause_s=0, limit=64 * MIB, **{"Content-Length": str(8 << 30)}
    )


async def _endless(request: web.Request, secret: str) -> web.StreamResponse:
    return await _stream(request, b'{"a":1}' * 100, pause_s=0.01, limit=512 * MIB)


async def _slow_body(request: web.Request, secret: str) -> web.StreamResponse:
    return await _stream(request, b" ", pause_s=0.5, limit=MIB)


async def _slow_headers(request: web.Request, secret: str) -> web.StreamResponse:
    await asyncio.sleep(_LONGEST_S)
    return web.json_response(_ID)


async def _invalid_json(request: web.Request, secret: str) -> web.StreamResponse:
    return web.Response(body=b'{"data": {"id": "x", ', content_type="application/json")


async def _deep_json(request: web.Request, secret: str) -> web.StreamResponse:
    return web.Response(body=deep_json(100_000), content_type="application/json")


async def _nan_json(request: web.Request, secret: str) -> web.StreamResponse:
    body = b'{"data": {"id": NaN, "n": 1e999999, "big": ' + b"9" * 100_000 + b"}}"
    return web.Response(body=body, content_type="application/json")


async def _gzip_bomb(request: web.Request, secret: str) -> web.StreamResponse:
    return web.Response(
        body=gzip_bomb(1024),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


async def _xml_bomb(request: web.Request, secret: str) -> web.StreamResponse:
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 11))
    body = f'<!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]><r>&l10;</r>'
    return web.Response(text=body, content_type="application/xml")


async def _xml_megabyte(request: web.Request, secret: str) -> web.StreamResponse:
    # 250,000 elements: within the webhook limits' reach, costly to build a tree of
    return web.Response(body=b"<r>" + b"<a/>" * 250_000 + b"</r>", content_type="text/xml")


def _echo(status: int, template: str) -> Handler:
    async def echo(request: web.Request, secret: str) -> web.StreamResponse:
        return web.Response(
            status=status, text=template.format(secret=secret), content_type="application/json"
        )

    return echo


def _redirect(status: int, location: str) -> Handler:
    async def redirect(request: web.Request, secret: str) -> web.StreamResponse:
        trap = request.app[_TRAP_PORT]
        return web.Response(status=status, headers={"Location": location.format(trap=trap)})

    return redirect


def _dashes(count: int) -> Handler:
    async def dashes(request: web.Request, secret: str) -> web.StreamResponse:
        return web.json_response({"result": "-" * count})

    return dashes


BEHAVIOURS: dict[str, Handler] = {
    "ok": _ok,
    "huge": _huge,
    "huge-declared": _huge_declared,
    "endless": _endless,
    "slow-body": _slow_body,
    "slow-headers": _slow_headers,
    "invalid-json": _invalid_json,
    "deep-json": _deep_json,
    "nan-json": _nan_json,
    "gzip-bomb": _gzip_bomb,
    "xml-bomb": _xml_bomb,
    "xml-megabyte": _xml_megabyte,
    "echo-secret-400": _echo(400, '{{"error": "invalid credentials: Bearer {secret}"}}'),
    "echo-secret-401": _echo(401, "Unauthorized: Bearer {secret}"),
    "echo-secret-500": _echo(500, '{{"trace": "token={secret}", "auth": "Bearer {secret}"}}'),
    "echo-secret-422": _echo(422, '{{"errors": [{{"detail": "{secret} is not allowed"}}]}}'),
    "redirect-trap-302": _redirect(302, "http://127.0.0.2:{trap}/send"),
    "redirect-trap-307": _redirect(307, "http://127.0.0.2:{trap}/send"),
    "redirect-decimal": _redirect(307, "http://2130706434:{trap}/send"),
    "redirect-metadata": _redirect(302, "http://169.254.169.254/latest/meta-data/"),
    "redirect-ipv6-loopback": _redirect(307, "http://[::1]:{trap}/send"),
    "dashes400": _dashes(400),
    "dashes500": _dashes(500),
}

_TRAP_PORT = web.AppKey("trap_port", int)


class HostileProvider:
    """The provider (``url``) and the trap on 127.0.0.2 (``trap_port``, ``trap_connections``)."""

    def __init__(self) -> None:
        self.url = ""
        self.trap_port = 0
        self.trap_connections = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._trap: asyncio.Server | None = None

    async def start(self) -> None:
        # Requests the provider cannot parse (a URL past its line limit) are the case's point,
        # not news: aiohttp would log each with its traceback.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        self._trap = await asyncio.start_server(self._trapped, "127.0.0.2", 0)
        self.trap_port = self._trap.sockets[0].getsockname()[1]
        app = web.Application()
        app[_TRAP_PORT] = self.trap_port
        app.router.add_post("/messages", self._send)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"127.0.0.1:{port}"

    async def _trapped(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.trap_connections += 1
        writer.close()

    async def _send(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        try:
            body = json.loads(await request.read())
            behaviour = str(body.get("content", "ok"))
        except (ValueError, AttributeError):
            behaviour = "ok"
        secret = request.headers.get("Authorization", "").removeprefix("Bearer ")
        handler = BEHAVIOURS.get(behaviour, _ok)
        return await handler(request, secret)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._trap is not None:
            self._trap.close()
