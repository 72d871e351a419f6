"""The grpc.aio interceptor that applies an :class:`AccessPolicy` to every call.

A refused call is answered, before its handler runs, by a handler of the same shape (unary or
streaming either way) that aborts with the error's rich status (google.rpc ``ErrorInfo``, domain
``msgbridge``), so clients see the same details as for any other gateway error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from ...errors import GatewayError, to_rpc_status
from ._policy import AccessPolicy

__all__ = ["AccessInterceptor"]

logger = logging.getLogger(__name__)

Continuation = Callable[[Any], Awaitable[Any]]


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Lets a call through when ``policy`` allows it; answers it with the refusal otherwise."""

    def __init__(self, policy: AccessPolicy) -> None:
        self._policy = policy

    async def intercept_service(self, continuation: Continuation, handler_call_details: Any) -> Any:
        method: str = handler_call_details.method
        try:
            self._policy.authorize(method, handler_call_details.invocation_metadata or ())
        except GatewayError as error:
            handler = await continuation(handler_call_details)
            return _refusal(handler, method, error)
        return await continuation(handler_call_details)


def _refusal(handler: Any, method: str, error: GatewayError) -> Any:
    """A handler shaped like ``handler`` (unary-unary when unknown) that aborts with ``error``."""
    status = to_rpc_status(error)

    async def refuse(context: grpc.aio.ServicerContext) -> NoReturn:
        logger.info(
            "API call refused",
            extra={"method": method, "reason": error.reason, "peer": context.peer()},
        )
        await context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(context)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await refuse(context)
        yield  # pragma: no cover - makes this an async generator

    request_streaming = bool(handler is not None and handler.request_streaming)
    response_streaming = bool(handler is not None and handler.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming)
    return grpc.unary_unary_rpc_method_handler(unary)
