"""Requests that are not valid protobuf: INVALID_ARGUMENT, never UNKNOWN with a traceback.

grpc.aio decodes a request with the method's ``FromString`` before any handler runs; a
``DecodeError`` there (bytes that are not a message of the request type — invalid UTF-8 in a
string field, a truncated field) would become UNKNOWN, with the exception's class in the details
and an error-level traceback in the log. :class:`DecodingInterceptor` wraps the deserializer of
every unary-request method so that it returns the :data:`UNDECODABLE` marker instead of raising,
and the method's behaviour so that the marker is answered INVALID_ARGUMENT (reason
``REQUEST_UNDECODABLE``, a plain message) before the handler sees it. The same wrapper serves
both services (``Gateway`` and ``Ingest``), unary and server-streaming; the handlers themselves
never see undecodable input.

Methods with a request stream (only server reflection has one) are left as grpc made them.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from ..errors import InvalidRequest, to_rpc_status

__all__ = ["UNDECODABLE", "DecodingInterceptor"]

logger = logging.getLogger(__name__)

Continuation = Callable[[Any], Awaitable[Any]]


class _Undecodable(enum.Enum):
    UNDECODABLE = "undecodable"


UNDECODABLE = _Undecodable.UNDECODABLE
"""What a wrapped deserializer returns for bytes that are not a message of its type."""


class DecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Answers undecodable requests INVALID_ARGUMENT instead of grpc's UNKNOWN."""

    async def intercept_service(self, continuation: Continuation, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        method: str = handler_call_details.method
        if handler.response_streaming:
            return handler._replace(
                request_deserializer=_lenient(handler.request_deserializer),
                unary_stream=_guard_streaming(handler.unary_stream, method),
            )
        return handler._replace(
            request_deserializer=_lenient(handler.request_deserializer),
            unary_unary=_guard_unary(handler.unary_unary, method),
        )


def _lenient(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return UNDECODABLE

    return deserialize


async def _refuse(method: str, context: grpc.aio.ServicerContext) -> NoReturn:
    # The bytes are the caller's mistake (or probe), not ours: a plain refusal, no traceback.
    logger.info("undecodable request refused", extra={"method": method, "peer": context.peer()})
    name = method.rpartition("/")[2] or method
    error = InvalidRequest(
        f"the {name} request could not be decoded: it is not a valid protobuf message of the "
        "method's request type (string fields must hold UTF-8)",
        reason="REQUEST_UNDECODABLE",
        metadata={"method": method},
    )
    await context.abort_with_status(to_rpc_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def _guard_unary(behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is UNDECODABLE:
            await _refuse(method, context)
        result = behaviour(request, context)
        return await result if inspect.isawaitable(result) else result

    return guarded


def _guard_streaming(behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behaviour):
        # A handler that writes with ``context.write``: keep it a coroutine function.
        return _guard_unary(behaviour, method)

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if request is UNDECODABLE:
            await _refuse(method, context)
        async for response in behaviour(request, context):
            yield response

    return guarded
