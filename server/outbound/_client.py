"""The one outbound HTTP client: every provider call goes through :class:`OutboundClient`.

Why aiohttp and not httpx: measured on this machine, a plain ``httpx.AsyncClient`` collapses under
concurrency (about 330 requests/s with 64 in flight, against about 7,600 for aiohttp over the same
loopback server), because its connection pool rescans every pooled connection on each request
(encode/httpx#3215). A gateway whose job is relaying requests cannot give away 95% of its ceiling.

One shared :class:`aiohttp.ClientSession` (created in :meth:`OutboundClient.start`) pools
connections for every installation; its connector's size is a setting. Cookies are never kept
(a shared jar would carry one organisation's provider cookies into another's calls) and proxy
variables from the environment are ignored (a proxy would make the policy judge the proxy).

Where the outbound policy is applied, so that the address judged is the address connected to:

- :class:`PolicyResolver` wraps aiohttp's resolver: every address a host name resolves to is
  judged, refused ones are dropped, and a name with no allowed address fails with
  :class:`PolicyRefused`. aiohttp connects only to what the resolver returned, so there is no
  DNS-rebinding window between the check and the connect (the DNS cache holds filtered results).
- Numeric hosts never reach a resolver; :meth:`OutboundClient.send` reads them the way the
  operating system would (``2130706433``, ``0x7f000001``, ``127.1`` are 127.0.0.1), judges them
  and rewrites the URL to the canonical address before anything is opened.
- Last, every socket passes through a guard before it connects, which judges the socket address
  itself; it catches any path that bypassed the two checks above.

Redirects are off by default: a provider API that answers 3xx has failed, and the answer is
returned as it is. With ``max_redirects > 0`` each hop is judged again, 303 (and 301/302 after a
POST) become a GET without a body, and credentials are dropped when the origin changes.

A *stand-in* (:mod:`server.outbound._stand_in`) sends one integration's calls to another base
URL: :meth:`OutboundClient.send` replaces the scheme, host and port of a call made for that
integration before anything above applies, and logs the redirect (integration and stand-in only).

Nothing here logs a header, a body, or a URL's path or query (templates may put secrets there).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from multidict import CIMultiDict
from yarl import URL

from server.engine import RenderedRequest
from server.metrics import NO_METRICS, Metrics
from server.tracing import note_http_status, provider_call_span, provider_trace_headers

from ._errors import (
    ConnectFailed,
    InvalidTarget,
    OutboundError,
    OutboundTimeout,
    PolicyRefused,
    TransportError,
)
from ._policy import IPAddress, OutboundPolicy, numeric_host
from ._stand_in import StandIn

__all__ = ["OutboundClient", "PolicyResolver", "ProviderResponse"]

logger = logging.getLogger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
_BODY_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding")


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderResponse:
    """A provider's answer. ``body`` holds at most the client's ``max_response_bytes``;
    ``truncated`` says that the provider sent more (the rest was not read)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_s: float
    truncated: bool = False


@dataclass(slots=True)
class _Attempt:
    """One request on its way out: the host name it was addressed to (None for a numeric host)
    and whether a connection has been obtained for it (after which it may have been sent)."""

    host: str | None
    connected: bool = False


# The attempt in progress in this task; read by the connector and the socket guard, which aiohttp
# calls from within the request (and from tasks it starts, which copy the context).
_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "msgbridge_outbound_attempt", default=None
)


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that returns only the addresses the policy allows for the host."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self._policy.check_host(host)
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: PolicyRefused | None = None
        for result in results:
            try:
                self._policy.check_address(result["host"], host=host)
            except PolicyRefused as exc:
                refused = refused or exc
            else:
                allowed.append(result)
        if not allowed and refused is not None:
            raise refused
        if refused is not None:
            logger.info(
                "outbound policy dropped %d of %d addresses of %s",
                len(results) - len(allowed),
                len(results),
                host,
            )
        return allowed

    async def close(self) -> None:
        # close, not aclose: this is aiohttp's AbstractResolver method, which its connector calls.
        await self._inner.close()


class _RefusedSocket(OSError):
    """Raised by the socket guard; an OSError so that aiohttp tries the next address."""

    def __init__(self, refused: PolicyRefused) -> None:
        super().__init__(str(refused))
        self.refused = refused


def _socket_guard(policy: OutboundPolicy) -> SocketFactoryType:
    def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        attempt = _ATTEMPT.get()
        try:
            policy.check_address(str(sockaddr[0]), host=attempt.host if attempt else None)
        except PolicyRefused as exc:
            raise _RefusedSocket(exc) from None
        return socket.socket(family=family, type=type_, proto=proto)

    return guarded_socket


class _Connector(aiohttp.TCPConnector):
    """Marks the attempt as connected once a connection (new or pooled) is handed out."""

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.connected = True
        return connection


class OutboundClient:
    """Sends rendered requests to providers through one pooled session, under the policy.

    Use as ``async with OutboundClient(policy=...) as client:`` or call :meth:`start` and
    :meth:`aclose`. Settings: ``max_connections`` (pool size across all hosts),
    ``max_response_bytes`` (larger answers are truncated), ``dns_cache_ttl_s``,
    ``max_redirects`` (0: a 3xx is returned as the answer), ``ssl_context`` (None: the system's
    trust store), ``user_agent``, ``resolver`` (the resolver the policy wraps; None: aiohttp's
    default), ``stand_ins`` (integration id → where its calls go instead; none by default),
    ``trace_providers`` (send the W3C ``traceparent`` of the call's span to the provider; off:
    no trace header ever leaves for a provider, docs/operations.md "Traces").
    """

    def __init__(
        self,
        *,
        policy: OutboundPolicy | None = None,
        max_connections: int = 100,
        max_response_bytes: int = 1 << 20,
        dns_cache_ttl_s: float = 10.0,
        max_redirects: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "msgbridge",
        resolver: AbstractResolver | None = None,
        stand_ins: Mapping[str, StandIn] | None = None,
        trace_providers: bool = False,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        if max_connections < 1 or max_response_bytes < 0 or max_redirects < 0:
            raise ValueError("max_connections must be ≥ 1, the other limits ≥ 0")
        self._policy = policy if policy is not None else OutboundPolicy()
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._dns_cache_ttl_s = dns_cache_ttl_s
        self._max_redirects = max_redirects
        self._ssl_context = ssl_context
        self._user_agent = user_agent
        self._inner_resolver = resolver
        self._stand_ins = dict(stand_ins or {})
        self._trace_providers = trace_providers
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PolicyResolver | None = None

    async def start(self) -> None:
        """Create the session and its connection pool (needs a running event loop)."""
        if self._session is not None:
            raise RuntimeError("OutboundClient already started")
        self._resolver = PolicyResolver(self._policy, self._inner_resolver)
        connector = _Connector(
            limit=self._max_connections,
            ttl_dns_cache=int(self._dns_cache_ttl_s),
            resolver=self._resolver,
            socket_factory=_socket_guard(self._policy),
            ssl=self._ssl_context if self._ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            # send() applies one deadline to the whole exchange; aiohttp's own timers stay off.
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=None),
            headers={"User-Agent": self._user_agent},
        )

    async def aclose(self) -> None:
        """Close every pooled connection (idempotent); :meth:`start` may open a new pool."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def __aenter__(self) -> OutboundClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(
        self,
        request: RenderedRequest,
        *,
        timeout: float,  # noqa: ASYNC109 (one deadline for the whole exchange, see below)
        integration: str | None = None,
    ) -> ProviderResponse:
        """Send ``request`` and read the answer, all within ``timeout`` seconds. ``integration``
        names the integration the call is made for, whose stand-in, if any, it goes to.

        The deadline is a parameter rather than left to the caller's ``asyncio.timeout`` so that
        an expiry can say whether the request may have been sent (:class:`OutboundTimeout`).

        Any HTTP answer is returned (a 4xx/5xx or a 3xx is the caller's to judge). Raises only
        :class:`OutboundError` subclasses; see :mod:`server.outbound._errors` for the tree.
        """
        started = time.perf_counter()
        method = request.method.upper()
        # The `provider call` span (docs/operations.md, "Traces"): host, port, status, never
        # the path or query; a shared no-op when traces are off.
        with provider_call_span(method, integration) as span:
            try:
                exchange = self._exchange(
                    method,
                    request.url,
                    headers=request.headers,
                    body=request.body,
                    timeout=timeout,
                    integration=integration,
                    max_redirects=self._max_redirects,
                )
                async with exchange as (response, url):
                    content, truncated = await self._read_body(response)
            except OutboundError:  # no answer: counted with status "none" (docs/operations.md)
                self._metrics.provider_call(integration or "", None, time.perf_counter() - started)
                raise
            elapsed = time.perf_counter() - started
            self._metrics.provider_call(integration or "", response.status, elapsed)
            logger.debug(
                "%s %s answered %d in %.1f ms", method, url.host, response.status, elapsed * 1000
            )
            note_http_status(span, response.status, url.host, url.port)
            return ProviderResponse(
                status=response.status,
                headers=response.headers,
                body=content,
                elapsed_s=elapsed,
                truncated=truncated,
            )

    @contextlib.asynccontextmanager
    async def open_get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 (one deadline for the whole exchange, body included)
        max_redirects: int,
        integration: str | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url`` and yield the answer with its body unread, for the caller to stream
        (a file: docs/media.md), all within ``timeout`` seconds — the reading of the body
        included. Redirects are followed up to ``max_redirects``, each hop judged by the policy,
        credentials dropped when the origin changes. ``integration``, for a URL the definition
        made (a file given as an id), sends it to that integration's stand-in, if any. Errors as
        :meth:`send`'s, also those met while the caller reads the body."""
        async with self._exchange(
            "GET",
            url,
            headers=headers,
            body=None,
            timeout=timeout,
            max_redirects=max_redirects,
            integration=integration,
        ) as (response, _):
            yield response

    @contextlib.asynccontextmanager
    async def _exchange(
        self,
        method: str,
        raw_url: str,
        *,
        headers: Mapping[str, str] | Sequence[tuple[str, str]],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109
        max_redirects: int,
        integration: str | None = None,
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, URL]]:
        """The exchange both :meth:`send` and :meth:`open_get` make: the stand-in, the policy,
        the redirects, one deadline, and every failure turned into an :class:`OutboundError`."""
        session = self._session
        if session is None:
            raise RuntimeError("OutboundClient not started")
        stand_in = self._stand_ins.get(integration) if integration is not None else None
        if stand_in is not None:
            logger.info(
                "provider call sent to a stand-in",
                extra={"integration": integration, "stand_in": stand_in.base},
            )
        url, host = self._target(stand_in.redirect(raw_url) if stand_in is not None else raw_url)
        sent_headers = CIMultiDict(headers)
        if self._trace_providers:  # asked for: docs/operations.md, "Traces"
            sent_headers.update(provider_trace_headers())
        attempt = _Attempt(host=host)
        try:
            async with asyncio.timeout(timeout):
                hop = 0
                while True:
                    attempt = _Attempt(host=host)
                    token = _ATTEMPT.set(attempt)
                    try:
                        async with session.request(
                            method, url, headers=sent_headers, data=body, allow_redirects=False
                        ) as response:
                            location = response.headers.get("Location")
                            if (
                                hop < max_redirects
                                and response.status in _REDIRECT_STATUSES
                                and location
                            ):
                                hop += 1
                                next_url = _join(url, location)
                                if next_url.origin() != url.origin():
                                    for name in _CREDENTIAL_HEADERS:
                                        sent_headers.popall(name, None)
                                if response.status == 303 or (
                                    response.status in (301, 302) and method == "POST"
                                ):
                                    method, body = "GET", None
                                    for name in _BODY_HEADERS:
                                        sent_headers.popall(name, None)
                                url, host = self._target(str(next_url))
                                continue
                            yield response, url
                            return
                    finally:
                        _ATTEMPT.reset(token)
        except OutboundError:
            raise
        except TimeoutError:
            phase = "after connecting" if attempt.connected else "before a connection was made"
            raise OutboundTimeout(
                f"no answer from {url.host}:{url.port} within {timeout:g} s ({phase})",
                may_have_been_sent=attempt.connected,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _RefusedSocket):
                raise exc.os_error.refused from None
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                raise ConnectFailed(f"could not resolve {exc.host}") from None
            reason = exc.strerror or type(exc.os_error).__name__
            raise ConnectFailed(f"could not connect to {exc.host}:{exc.port}: {reason}") from None
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            raise InvalidTarget(f"cannot call this URL (host {url.host!r})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"connection to {url.host}:{url.port} failed after the request started "
                f"({type(exc).__name__})"
            ) from None

    def _target(self, raw_url: str) -> tuple[URL, str | None]:
        """The URL to open (numeric hosts in canonical form) and its host name (None when
        numeric), after judging what can be judged before resolving."""
        url, address = _parse_url(raw_url)
        if address is None:
            self._policy.check_host(url.raw_host or "")
            return url, url.raw_host
        self._policy.check_address(address)
        return url, None

    async def _read_body(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        cap = self._max_response_bytes
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = await response.content.read(cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if size > cap:
            response.close()  # the rest is never read; the connection cannot be reused
            return content[:cap], True
        return content, False


@functools.lru_cache(maxsize=1024)
def _parse_url(raw_url: str) -> tuple[URL, IPAddress | None]:
    """Parse a URL to call (cached: a few integrations' URLs repeat on every send). A numeric
    host is returned as its address, and the URL rewritten to the canonical form of it."""
    try:
        url = URL(raw_url)
    except (TypeError, ValueError):
        raise InvalidTarget("the URL cannot be parsed") from None
    if url.scheme not in ("http", "https") or not url.raw_host or url.host is None:
        raise InvalidTarget("only absolute http and https URLs can be called")
    address = numeric_host(url.host)
    if address is not None and address.version == 4 and url.raw_host != str(address):
        url = url.with_host(str(address))
    return url, address


def _join(base: URL, location: str) -> URL:
    try:
        return base.join(URL(location))
    except (TypeError, ValueError):
        raise InvalidTarget("a redirect's Location cannot be parsed") from None
