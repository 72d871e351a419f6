"""The client's exceptions: every failed call is raised as a :class:`MsgbridgeError`.

    MsgbridgeError                      (base; any other gRPC code: UNKNOWN, INTERNAL, …)
     ├── InvalidArgumentError           INVALID_ARGUMENT, OUT_OF_RANGE  (BadRequest violations)
     ├── NotFoundError                  NOT_FOUND
     ├── AlreadyExistsError             ALREADY_EXISTS
     ├── PermissionDeniedError          PERMISSION_DENIED
     ├── UnauthenticatedError           UNAUTHENTICATED
     ├── FailedPreconditionError        FAILED_PRECONDITION, ABORTED
     ├── ResourceExhaustedError         RESOURCE_EXHAUSTED  (RetryInfo: the provider's Retry-After)
     ├── DeadlineExceededError          DEADLINE_EXCEEDED
     ├── UnavailableError               UNAVAILABLE  (the service, or the provider, is unreachable)
     └── CancelledError                 CANCELLED

Each carries ``code`` (a ``grpc.StatusCode``) and ``message`` from the call. The google.rpc details
(the ``grpc-status-details-bin`` trailer) are parsed lazily, on the first access of ``status``,
``details``, ``error_info``, ``bad_request``, ``retry_info`` or ``precondition_failure``: an error
that is only logged or re-raised never pays for the parse. A trailer that cannot be parsed, or
disagrees with the call's code or message, reads as no details at all.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MsgbridgeError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "error_from_rpc",
]

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=Message)

# The google.rpc detail types a server may pack; anything else stays a google.protobuf.Any.
_DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.QuotaFailure,
    error_details_pb2.ResourceInfo,
    error_details_pb2.RequestInfo,
    error_details_pb2.DebugInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
)


class MsgbridgeError(Exception):
    """A call to the gateway failed with ``code`` and ``message``; details are read on demand."""

    def __init__(self, code: grpc.StatusCode, message: str, *, call: Any = None) -> None:
        super().__init__(message)
        self.code: grpc.StatusCode = code
        self.message: str = message
        self._call = call

    def __str__(self) -> str:
        reason = self.reason
        head = f"{self.code.name} ({reason})" if reason else self.code.name
        return f"{head}: {self.message}" if self.message else head

    @functools.cached_property
    def status(self) -> status_pb2.Status | None:
        """The whole google.rpc.Status from the trailer, or None when the server sent none."""
        if self._call is None:
            return None
        try:
            parsed: status_pb2.Status | None = rpc_status.from_call(self._call)
        except (ValueError, DecodeError) as exc:
            logger.debug("ignoring unusable grpc-status-details-bin trailer: %s", exc)
            return None
        return parsed

    @functools.cached_property
    def details(self) -> tuple[Message, ...]:
        """Every detail, unpacked to its google.rpc type (or left a ``google.protobuf.Any``)."""
        if self.status is None:
            return ()
        return tuple(_unpack(detail) for detail in self.status.details)

    @property
    def error_info(self) -> error_details_pb2.ErrorInfo | None:
        """The ErrorInfo (reason, domain, metadata such as ``integration``), if sent."""
        return _first(self.details, error_details_pb2.ErrorInfo)

    @property
    def bad_request(self) -> error_details_pb2.BadRequest | None:
        """The BadRequest (field violations; for a definition the field is a JSON Pointer)."""
        return _first(self.details, error_details_pb2.BadRequest)

    @property
    def retry_info(self) -> error_details_pb2.RetryInfo | None:
        """The RetryInfo (how long to wait before trying again), if sent."""
        return _first(self.details, error_details_pb2.RetryInfo)

    @property
    def precondition_failure(self) -> error_details_pb2.PreconditionFailure | None:
        return _first(self.details, error_details_pb2.PreconditionFailure)

    @property
    def reason(self) -> str:
        """The ErrorInfo reason, e.g. ``NUMBER_NOT_IN_INSTALLATION`` ("" when none was sent)."""
        info = self.error_info
        return info.reason if info is not None else ""

    @property
    def field_violations(self) -> tuple[error_details_pb2.BadRequest.FieldViolation, ...]:
        bad = self.bad_request
        return tuple(bad.field_violations) if bad is not None else ()

    @property
    def retry_delay(self) -> datetime.timedelta | None:
        info = self.retry_info
        if info is None or not info.HasField("retry_delay"):
            return None
        delay: datetime.timedelta = info.retry_delay.ToTimedelta()
        return delay


class InvalidArgumentError(MsgbridgeError):
    """The request, or a definition, is invalid; ``field_violations`` says where."""


class NotFoundError(MsgbridgeError):
    pass


class AlreadyExistsError(MsgbridgeError):
    pass


class PermissionDeniedError(MsgbridgeError):
    pass


class UnauthenticatedError(MsgbridgeError):
    pass


class FailedPreconditionError(MsgbridgeError):
    pass


class ResourceExhaustedError(MsgbridgeError):
    """Rate limited; ``retry_delay`` is the wait the server (or the provider) asked for."""


class DeadlineExceededError(MsgbridgeError):
    pass


class UnavailableError(MsgbridgeError):
    pass


class CancelledError(MsgbridgeError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[MsgbridgeError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def error_from_rpc(error: grpc.RpcError) -> MsgbridgeError:
    """The :class:`MsgbridgeError` for a failed call (sync or asyncio); nothing is parsed yet."""
    # The sync channel raises a grpc.Call; grpc.aio.AioRpcError is no grpc.Call but has the same
    # code(), details() and trailing_metadata(), which is all rpc_status.from_call reads.
    if callable(getattr(error, "code", None)) and callable(getattr(error, "details", None)):
        code: grpc.StatusCode = error.code()
        text: str = error.details() or ""
        call: Any = error
    else:  # pragma: no cover - grpc raises only calls; kept for foreign RpcError subclasses
        code, text, call = grpc.StatusCode.UNKNOWN, str(error), None
    return _BY_CODE.get(code, MsgbridgeError)(code, text, call=call)


def _unpack(detail: any_pb2.Any) -> Message:
    for detail_type in _DETAIL_TYPES:
        if detail.TypeName() == detail_type.DESCRIPTOR.full_name:
            unpacked = detail_type()
            detail.Unpack(unpacked)
            return unpacked
    return detail


def _first(details: Sequence[Message], kind: type[_M]) -> _M | None:
    for detail in details:
        if isinstance(detail, kind):
            return detail
    return None
