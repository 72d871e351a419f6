"""The one error boundary of every RPC: what a caller is told when a handler raises.

- a :class:`GatewayError`: its status, with google.rpc details (``ErrorInfo``, ``BadRequest``,
  ``RetryInfo``; see :func:`server.errors.to_rpc_status`);
- a :class:`StoreError`: UNAVAILABLE, reason ``STORE_UNAVAILABLE`` (the caller may retry);
- anything else: INTERNAL with an incident id, which the log line carries too; the traceback
  goes to the log only, never to the caller.

:func:`rpc` wraps a unary handler, :func:`rpc_stream` a server-streaming one (an async
generator); both answer through :func:`status_of`. The stream is wrapped once per call: the
``try`` encloses the whole iteration, so a response costs one hand-over between two generators
and nothing else (no per-item ``try`` set up, no copy).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ..errors import GatewayError, Unavailable, to_rpc_status
from ..store import StoreError
from ..tracing import note_grpc_status, rpc_span

__all__ = ["rpc", "rpc_stream", "status_of"]

logger = logging.getLogger(__name__)

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Unary = Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]
_Streaming = Callable[[Any, _Req, grpc.aio.ServicerContext], AsyncGenerator[_Resp, None]]


def status_of(error: Exception, rpc_name: str) -> grpc.Status:
    """The status a caller gets for ``error``, raised by the handler of ``rpc_name``."""
    if isinstance(error, GatewayError):
        return to_rpc_status(error)
    if isinstance(error, StoreError):
        logger.error("store failure", exc_info=error, extra={"rpc": rpc_name})
        return to_rpc_status(
            Unavailable("the store is not available; retry later", reason="STORE_UNAVAILABLE")
        )
    incident = uuid.uuid4().hex[:12]
    logger.error(
        "unexpected failure", exc_info=error, extra={"rpc": rpc_name, "incident": incident}
    )
    return to_rpc_status(
        GatewayError(f"internal error (incident {incident})", metadata={"incident": incident})
    )


def rpc(handler: _Unary[_Req, _Resp]) -> _Unary[_Req, _Resp]:
    """``handler`` (a unary servicer method), answering what it raises by :func:`status_of`."""

    @functools.wraps(handler)
    async def answered(self: Any, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
        # The call's server span (docs/operations.md, "Traces"); a shared no-op when off.
        with rpc_span(handler.__name__, context) as span:
            try:
                reply = await handler(self, request, context)
                note_grpc_status(span, grpc.StatusCode.OK)
                return reply
            except grpc.aio.AbortError:
                raise  # the call was ended with its status already
            except Exception as exc:  # not CancelledError: a cancelled call is answered by grpc
                status = status_of(exc, handler.__name__)
            note_grpc_status(span, status.code)
            await context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    return answered


def rpc_stream(handler: _Streaming[_Req, _Resp]) -> _Streaming[_Req, _Resp]:
    """``handler`` (a server-streaming servicer method, an async generator), answering what it
    raises — before its first response or between two — by :func:`status_of`.

    The handler's generator is closed when the call ends however it ends (the caller went away,
    the server stops), so that its ``finally`` blocks (a durable consumer's lease release) run
    in this call's task rather than whenever the generator is collected.
    """

    @functools.wraps(handler)
    async def answered(
        self: Any, request: _Req, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[_Resp, None]:
        try:
            async with contextlib.aclosing(handler(self, request, context)) as responses:
                async for response in responses:
                    yield response
            return
        except grpc.aio.AbortError:
            raise  # the call was ended with its status already
        except Exception as exc:  # not CancelledError, nor GeneratorExit when the call ends
            status = status_of(exc, handler.__name__)
        await context.abort_with_status(status)

    return answered
