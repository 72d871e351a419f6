"""A fake messaging provider: an HTTP server that records what it receives and answers as scripted.

Used by the tests, by ``make run`` (the demo integration sends to it) and as the benchmark target,
so it stays cheap per request: it records the raw request and parses bodies only when a record is
read. Run it alone with ``python -m server.demo --host 127.0.0.1 --port 8090``.

By default every request is answered ``200`` with ``{"data": {"id": "<unique id>"}}`` — the
seed's response shape — except an OAuth2 authorization request (a ``GET`` with
``response_type=code`` and a ``redirect_uri``, RFC 6749 §4.1.1) to a path without a script of its
own, which the fake approves at once, as an admin would: ``302`` to the ``redirect_uri`` with a
``code`` (the request's unique id) and the request's ``state`` (§4.1.2). So a gateway whose
integration has the fake as its stand-in can be authorized with a browser or a plain GET that
follows redirects. Answers can be scripted per path (or for every path with ``"*"``): status,
body, headers (``Retry-After``), a delay, closing the connection instead of answering, and a
sequence of answers (one per request; the last repeats) for retries. In a text or JSON body the
token ``{id}`` becomes the request's unique id.

Scripting and reading records, in process::

    fake = await start_fake_provider()
    fake.state.script("/messages", Answer(status=429, headers=(("Retry-After", "1"),)), Answer())
    ... fake.state.requests[-1].json ...
    await fake.aclose()

and over HTTP, for a service running in another process (these paths are never recorded):

- ``POST /_fake/script`` ``{"path": "/messages", "answers": [{"status": 503, "json": {...},
  "text": "...", "headers": {"Retry-After": "1"}, "delay_s": 0.5, "close": false}]}`` (or
  ``"body_base64"``: a file's bytes, answered as they are); an empty ``answers`` list removes
  the path's script. ``DELETE /_fake/script`` removes every script.
- ``GET /_fake/requests`` (``?path=/messages`` to filter, ``?after=SEQ`` for only the requests
  received after the one numbered ``SEQ``) → ``{"requests": [...]}``, each with its ``seq``,
  method, path, query, headers, ``body_base64``, ``text`` (when UTF-8) and the parsed ``json``,
  ``form`` or ``parts``, the answer given (``answer_status``, ``answer_id``) and ``received_at``
  (``time.monotonic()`` when it arrived: the benchmarks measure send rates from it).
- ``DELETE /_fake/requests`` forgets what was received.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import email.message
import email.parser
import itertools
import json
import signal
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

__all__ = [
    "Answer",
    "FakeProviderState",
    "FetchedFile",
    "Part",
    "ReceivedRequest",
    "RunningFakeProvider",
    "build_fake_provider",
    "main",
    "start_fake_provider",
]

_CONTROL_PREFIX = "/_fake/"
_ID_PLACEHOLDER = "{id}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """One scripted answer. With neither ``json`` nor ``text`` the body is the default
    ``{"data": {"id": "{id}"}}``. ``close`` drops the connection after reading the request,
    without answering (the client sees the connection reset mid-request)."""

    status: int = 200
    json: Any = None
    text: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    close: bool = False
    #: Bytes to answer with as they are (a file: docs/media.md), in place of ``json``/``text``.
    body: bytes | None = None
    #: Answer 401 unless the request's ``Authorization`` header is exactly this (a provider's
    #: media that needs the account's credentials).
    authorization: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        """An answer from the control API's JSON form (``headers`` a mapping or a list of pairs)."""
        known = {"status", "json", "text", "headers", "delay_s", "close", "body_base64"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown answer keys: {sorted(unknown)}")
        encoded = data.get("body_base64")
        raw_headers = data.get("headers") or ()
        pairs = raw_headers.items() if isinstance(raw_headers, Mapping) else raw_headers
        return cls(
            status=int(data.get("status", 200)),
            json=data.get("json"),
            text=data.get("text"),
            headers=tuple((str(k), str(v)) for k, v in pairs),
            delay_s=float(data.get("delay_s", 0.0)),
            close=bool(data.get("close", False)),
            body=None if encoded is None else base64.b64decode(str(encoded), validate=True),
        )

    def render(self, answer_id: str) -> tuple[bytes, str]:
        """The body and its content type, with ``{id}`` replaced by ``answer_id``."""
        if self.body is not None:
            return self.body, "application/octet-stream"
        if self.text is not None:
            return self.text.replace(
                _ID_PLACEHOLDER, answer_id
            ).encode(), "text/plain; charset=utf-8"
        tree = self.json if self.json is not None else {"data": {"id": _ID_PLACEHOLDER}}
        body = json.dumps(_replace_id(tree, answer_id), ensure_ascii=False).encode()
        return body, "application/json"


_DEFAULT_ANSWER = Answer()


def _replace_id(tree: Any, answer_id: str) -> Any:
    if isinstance(tree, str):
        return tree.replace(_ID_PLACEHOLDER, answer_id)
    if isinstance(tree, dict):
        return {k: _replace_id(v, answer_id) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_replace_id(v, answer_id) for v in tree]
    return tree


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchedFile:
    """A file the provider fetched from a URL a send gave it: the status and the bytes."""

    url: str
    status: int
    body: bytes


async def _fetch_file(state: FakeProviderState, url: str) -> None:
    import aiohttp  # only a provider told to fetch files needs a client

    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            state.fetched.append(
                FetchedFile(url=url, status=response.status, body=await response.read())
            )
    except aiohttp.ClientError:
        state.fetched.append(FetchedFile(url=url, status=0, body=b""))


def _file_url(body: bytes, key: str) -> str | None:
    try:
        value = json.loads(body).get(key)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Part:
    """One part of a multipart body."""

    name: str | None
    filename: str | None
    content_type: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "filename": self.filename,
            "content_type": self.content_type,
            "data_base64": base64.b64encode(self.data).decode(),
        }
        with contextlib.suppress(UnicodeDecodeError):
            out["text"] = self.data.decode()
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceivedRequest:
    """A request as the fake provider received it. The parsed views (:attr:`json`,
    :attr:`form`, :attr:`parts`) are computed from :attr:`body` when read; each is None unless
    the request's content type is of its kind and the body parses."""

    seq: int
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    answer_status: int | None
    answer_id: str
    #: ``time.monotonic()`` when the request arrived (before its body was read): the send rates
    #: the benchmarks check are measured from it, on the provider's side of the wire.
    received_at: float = 0.0

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def content_type(self) -> str:
        message = email.message.Message()
        message["content-type"] = self.header("Content-Type") or ""
        return message.get_content_type() if self.header("Content-Type") else ""

    @property
    def text(self) -> str | None:
        try:
            return self.body.decode()
        except UnicodeDecodeError:
            return None

    @property
    def json(self) -> Any:
        kind = self.content_type
        if not (kind == "application/json" or kind.endswith("+json")):
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def form(self) -> tuple[tuple[str, str], ...] | None:
        if self.content_type != "application/x-www-form-urlencoded":
            return None
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            return None
        return tuple(parse_qsl(text, keep_blank_values=True))

    @property
    def parts(self) -> tuple[Part, ...] | None:
        header = self.header("Content-Type") or ""
        if not self.content_type.startswith("multipart/"):
            return None
        message = email.message.Message()
        message["content-type"] = header
        boundary = message.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            return None
        return _parse_multipart(self.body, boundary.encode())

    def to_json(self) -> dict[str, Any]:
        """The record in the control API's JSON form."""
        parts = self.parts
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": [list(p) for p in self.query],
            "headers": [list(h) for h in self.headers],
            "content_type": self.content_type,
            "body_base64": base64.b64encode(self.body).decode(),
            "text": self.text,
            "json": self.json,
            "form": None if (form := self.form) is None else [list(p) for p in form],
            "parts": None if parts is None else [p.to_json() for p in parts],
            "answer_status": self.answer_status,
            "answer_id": self.answer_id,
            "received_at": self.received_at,
        }


def _parse_multipart(body: bytes, boundary: bytes) -> tuple[Part, ...] | None:
    """Split a multipart body exactly (RFC 2046 / 7578); None when it is malformed."""
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0:
        return None
    position = start + len(delimiter)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", position):
            return tuple(parts)
        if not body.startswith(b"\r\n", position):
            return None
        header_end = body.find(b"\r\n\r\n", position)  # == position: a part without headers
        if header_end < 0:
            return None
        raw_headers, content_start = body[position + 2 : header_end], header_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, content_start)
        if next_delimiter < 0:
            return None
        headers = email.parser.HeaderParser().parsestr(raw_headers.decode("utf-8", "replace"))
        name = headers.get_param("name", header="content-disposition")
        parts.append(
            Part(
                name=name if isinstance(name, str) else None,
                filename=headers.get_filename(),
                content_type=headers.get_content_type() if "content-type" in headers else "",
                data=body[content_start:next_delimiter],
            )
        )
        position = next_delimiter + 2 + len(delimiter)


@dataclass(kw_only=True, slots=True)
class FakeProviderState:
    """What the fake provider received and how it answers. Mutate only from its event loop.

    ``fetch_files_from`` names a key of a JSON request body: when a request carries an http(s)
    URL there, the provider fetches that file afterwards, as a real one fetches a send's media
    (docs/media.md), and keeps what it got in ``fetched``."""

    max_recorded: int | None = 100_000
    id_prefix: str = field(default_factory=lambda: f"fake-{uuid.uuid4().hex[:8]}")
    fetch_files_from: str | None = None
    fetched: list[FetchedFile] = field(default_factory=list)
    _requests: collections.deque[ReceivedRequest] = field(init=False)
    _scripts: dict[str, list[Answer]] = field(init=False, default_factory=dict)
    _counter: itertools.count[int] = field(init=False, default_factory=lambda: itertools.count(1))
    _waiters: list[asyncio.Future[None]] = field(init=False, default_factory=list)
    _fetches: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self._requests = collections.deque(maxlen=self.max_recorded)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received (oldest first), control API calls excepted."""
        return list(self._requests)

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self._requests if r.path == path]

    async def wait_for_requests(self, count: int, *, path: str | None = None) -> None:
        """Return once at least ``count`` requests (to ``path``, if given) have been received."""
        loop = asyncio.get_running_loop()
        while len(self.requests if path is None else self.requests_to(path)) < count:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def _record(self, request: ReceivedRequest) -> None:
        self._requests.append(request)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def fetches_done(self) -> None:
        """Return once every file fetch begun so far has ended (see ``fetch_files_from``)."""
        await asyncio.gather(*list(self._fetches))

    def clear_requests(self) -> None:
        self._requests.clear()

    def script(self, path: str, *answers: Answer) -> None:
        """Answer requests to ``path`` (``"*"``: any path without its own script) with
        ``answers`` in turn, the last one repeating. No answers removes the script."""
        if answers:
            self._scripts[path] = list(answers)
        else:
            self._scripts.pop(path, None)

    def clear_scripts(self) -> None:
        self._scripts.clear()

    def reset(self) -> None:
        """Forget every request and every script."""
        self.clear_requests()
        self.clear_scripts()

    def _next_answer(self, path: str, authorization: Answer | None = None) -> Answer:
        """The next scripted answer for ``path``; ``authorization`` (an authorization request's
        approval) comes before a script for every path and the default."""
        script = self._scripts.get(path)
        if not script and authorization is not None:
            return authorization
        script = script or self._scripts.get("*")
        if not script:
            return _DEFAULT_ANSWER
        return script.pop(0) if len(script) > 1 else script[0]

    def _next_seq(self) -> int:
        return next(self._counter)


_STATE_KEY = web.AppKey("fake_provider_state", FakeProviderState)


def _approval(request: web.Request, code: str) -> Answer | None:
    """For an OAuth2 authorization request (RFC 6749 §4.1.1), the redirect back to its
    ``redirect_uri`` with ``code`` and its ``state`` (§4.1.2); None for any other request."""
    if request.method != "GET" or not request.query_string:  # cheap: the fake is a bench target
        return None
    query = request.query
    redirect_uri = query.get("redirect_uri", "")
    if query.get("response_type") != "code" or not redirect_uri:
        return None
    granted = {"code": code, **({"state": query["state"]} if "state" in query else {})}
    separator = "&" if "?" in redirect_uri else "?"
    location = f"{redirect_uri}{separator}{urlencode(granted)}"
    return Answer(status=302, text="", headers=(("Location", location),))


async def _handle(request: web.Request) -> web.StreamResponse:
    received_at = time.monotonic()
    state = request.app[_STATE_KEY]
    body = await request.read()
    seq = state._next_seq()
    answer_id = f"{state.id_prefix}-{seq}"
    answer = state._next_answer(request.path, _approval(request, answer_id))
    state._record(
        ReceivedRequest(
            seq=seq,
            method=request.method,
            path=request.path,
            query=tuple(request.query.items()),
            headers=tuple(request.headers.items()),
            body=body,
            answer_status=None if answer.close else answer.status,
            answer_id=answer_id,
            received_at=received_at,
        )
    )
    if state.fetch_files_from is not None:
        url = _file_url(body, state.fetch_files_from)
        if url is not None:
            fetch = asyncio.get_running_loop().create_task(_fetch_file(state, url))
            state._fetches.add(fetch)
            fetch.add_done_callback(state._fetches.discard)
    if answer.delay_s > 0:
        await asyncio.sleep(answer.delay_s)
    if answer.close:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never written: the transport is closed
    if answer.authorization is not None and (
        request.headers.get("Authorization") != answer.authorization
    ):
        return web.Response(status=401, text="unauthorized")
    content, content_type = answer.render(answer_id)
    response = web.Response(status=answer.status, body=content, content_type=None)
    response.headers["Content-Type"] = content_type
    for name, value in answer.headers:
        if name.lower() == "content-type":
            response.headers["Content-Type"] = value
        else:
            response.headers.add(name, value)
    return response


async def _control_script(request: web.Request) -> web.Response:
    state = request.app[_STATE_KEY]
    if request.method == "DELETE":
        state.clear_scripts()
        return web.Response(status=204)
    try:
        data = await request.json()
        path = data["path"]
        answers = [Answer.from_json(a) for a in data.get("answers", [])]
        if not isinstance(path, str) or not (path.startswith("/") or path == "*"):
            raise ValueError("path must start with / or be *")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return web.json_response({"error": f"bad script: {exc}"}, status=400)
    state.script(path, *answers)
    return web.Response(status=204)


async def _control_requests(request: web.Request) -> web.Response:
    state = request.app[_STATE_KEY]
    if request.method == "DELETE":
        state.clear_requests()
        return web.Response(status=204)
    path = request.query.get("path")
    records = state.requests if path is None else state.requests_to(path)
    if "after" in request.query:
        try:
            after = int(request.query["after"])
        except ValueError:
            return web.json_response({"error": "after: a request's seq"}, status=400)
        records = [r for r in records if r.seq > after]
    return web.json_response({"requests": [r.to_json() for r in records]})


def build_fake_provider(
    *, max_recorded: int | None = 100_000
) -> tuple[web.Application, FakeProviderState]:
    """The fake provider's app and its state (records and scripts)."""
    state = FakeProviderState(max_recorded=max_recorded)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_STATE_KEY] = state
    app.router.add_route("POST", f"{_CONTROL_PREFIX}script", _control_script)
    app.router.add_route("DELETE", f"{_CONTROL_PREFIX}script", _control_script)
    app.router.add_route("GET", f"{_CONTROL_PREFIX}requests", _control_requests)
    app.router.add_route("DELETE", f"{_CONTROL_PREFIX}requests", _control_requests)
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app, state


@dataclass(kw_only=True, slots=True)
class RunningFakeProvider:
    """A started fake provider: its base ``url`` (no trailing slash) and ``state``."""

    url: str
    state: FakeProviderState
    runner: web.AppRunner

    async def aclose(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningFakeProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def start_fake_provider(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_recorded: int | None = 100_000,
    ssl_context: ssl.SSLContext | None = None,
) -> RunningFakeProvider:
    """Start the fake provider on ``host:port`` (port 0: any free port) in this event loop;
    with ``ssl_context`` it serves HTTPS."""
    app, state = build_fake_provider(max_recorded=max_recorded)
    # A scripted delay must not hold up shutdown: in-flight answers get a short grace period.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if ssl_context is not None else "http"
    return RunningFakeProvider(url=f"{scheme}://{shown}:{bound_port}", state=state, runner=runner)


async def _serve(host: str, port: int, max_recorded: int | None) -> None:
    fake = await start_fake_provider(host=host, port=port, max_recorded=max_recorded)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"fake provider listening on {fake.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m server.demo",
        description="A fake SMS provider that records requests and answers as scripted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port (0: any free port)")
    parser.add_argument(
        "--max-recorded",
        type=int,
        default=100_000,
        help="keep at most this many requests (oldest dropped first)",
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.max_recorded))
