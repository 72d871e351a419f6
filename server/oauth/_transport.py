"""An httpx transport that sends through :class:`server.outbound.OutboundClient`.

authlib's OAuth2 client is built on httpx; provider calls must obey the outbound policy, which
the aiohttp-based :class:`~server.outbound.OutboundClient` applies to the resolved address at
connect time (no DNS-rebinding window) and on every redirect. :class:`OutboundTransport` lets
httpx hand each request to that client, so token requests get exactly the same policy, pool,
limits and timeouts as the gateway's other provider calls.

Headers that belong to the connection rather than the request (``Host``, ``Connection``,
``Content-Length``, ``Transfer-Encoding``, ``Accept-Encoding``) and httpx's ``User-Agent`` are left
to aiohttp. aiohttp decodes a compressed answer, so ``Content-Encoding`` and ``Content-Length``
are dropped from the answer given back to httpx.

A request whose ``extensions`` name an integration (:data:`INTEGRATION_EXTENSION`, set by the
token endpoint for the installation's integration) is sent as that integration's call, so that
the integration's stand-in, if any, receives it (docs/format.md, "Proving a definition").

A request whose ``extensions`` carry :data:`EXCHANGE_EXTENSION` (the installation it is made for
and the mask of its secrets, set by the token endpoint) is handed, with its answer or error, to
the transport's ``on_exchange`` hook, which keeps it in the provider exchange log
(docs/operations.md, "Provider exchanges").

Errors from the outbound client are raised as they are (:class:`server.outbound.OutboundError`):
the caller maps a policy refusal to PERMISSION_DENIED like any provider call's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from server.engine import RenderedRequest
from server.outbound import OutboundClient, OutboundError, ProviderResponse
from server.security.secrets import SecretMask

__all__ = ["EXCHANGE_EXTENSION", "INTEGRATION_EXTENSION", "ExchangeHook", "OutboundTransport"]

#: The httpx request extension naming the integration a request is made for.
INTEGRATION_EXTENSION = "msgbridge.integration"
#: The httpx request extension asking for the exchange to be kept: ``(installation id, mask)``.
EXCHANGE_EXTENSION = "msgbridge.exchange"

#: Keeps one token exchange: the installation, the mask of its secrets, the request as sent, its
#: answer (or the error met instead), when it started and how long it took, seconds.
ExchangeHook = Callable[
    [str, SecretMask, RenderedRequest, ProviderResponse | OutboundError, datetime, float],
    Awaitable[None],
]

_REQUEST_HEADERS_LEFT_OUT = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "accept-encoding", "user-agent"}
)
_ANSWER_HEADERS_LEFT_OUT = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _deadline(request: httpx.Request, default_s: float) -> float:
    """One deadline for the whole exchange: the longest of httpx's per-phase timeouts."""
    timeouts = request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        phases = [t for t in timeouts.values() if isinstance(t, int | float)]
        if phases:
            return float(max(phases))
    return default_s


class OutboundTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through ``client`` (which must be started); never closes it.

    ``default_timeout_s`` applies when a request carries no httpx timeout.
    """

    def __init__(
        self,
        client: OutboundClient,
        *,
        default_timeout_s: float = 10.0,
        on_exchange: ExchangeHook | None = None,
    ) -> None:
        self._client = client
        self._default_timeout_s = default_timeout_s
        self._on_exchange = on_exchange

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        encoding = request.headers.encoding
        headers = tuple(
            (name.decode(encoding), value.decode(encoding))
            for name, value in request.headers.raw
            if name.decode(encoding).lower() not in _REQUEST_HEADERS_LEFT_OUT
        )
        integration = request.extensions.get(INTEGRATION_EXTENSION)
        rendered = RenderedRequest(
            method=request.method, url=str(request.url), headers=headers, body=body or None
        )
        keep: tuple[str, SecretMask] | None = request.extensions.get(EXCHANGE_EXTENSION)
        started_at, started = datetime.now(UTC), time.perf_counter()
        try:
            answer = await self._client.send(
                rendered,
                timeout=_deadline(request, self._default_timeout_s),
                integration=integration if isinstance(integration, str) else None,
            )
        except OutboundError as exc:
            if self._on_exchange is not None and keep is not None:
                elapsed = time.perf_counter() - started
                await self._on_exchange(keep[0], keep[1], rendered, exc, started_at, elapsed)
            raise
        if self._on_exchange is not None and keep is not None:
            await self._on_exchange(
                keep[0], keep[1], rendered, answer, started_at, answer.elapsed_s
            )
        if answer.truncated:
            raise httpx.ReadError(
                "the answer is larger than the outbound client accepts", request=request
            )
        return httpx.Response(
            status_code=answer.status,
            headers=[
                (name, value)
                for name, value in answer.headers.items()
                if name.lower() not in _ANSWER_HEADERS_LEFT_OUT
            ],
            content=answer.body,
            request=request,
        )

    async def aclose(self) -> None:
        """Nothing to close: the outbound client belongs to whoever passed it in."""
