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

Errors from the outbound client are raised as they are (:class:`server.outbound.OutboundError`):
the caller maps a policy refusal to PERMISSION_DENIED like any provider call's.
"""

from __future__ import annotations

import httpx

from server.engine import RenderedRequest
from server.outbound import OutboundClient

__all__ = ["INTEGRATION_EXTENSION", "OutboundTransport"]

#: The httpx request extension naming the integration a request is made for.
INTEGRATION_EXTENSION = "msgbridge.integration"

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

    def __init__(self, client: OutboundClient, *, default_timeout_s: float = 10.0) -> None:
        self._client = client
        self._default_timeout_s = default_timeout_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        encoding = request.headers.encoding
        headers = tuple(
            (name.decode(encoding), value.decode(encoding))
            for name, value in request.headers.raw
            if name.decode(encoding).lower() not in _REQUEST_HEADERS_LEFT_OUT
        )
        integration = request.extensions.get(INTEGRATION_EXTENSION)
        answer = await self._client.send(
            RenderedRequest(
                method=request.method,
                url=str(request.url),
                headers=headers,
                body=body or None,
            ),
            timeout=_deadline(request, self._default_timeout_s),
            integration=integration if isinstance(integration, str) else None,
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
