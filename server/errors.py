"""The gateway's exceptions, each carrying its gRPC code, its HTTP meaning and its reason.

    GatewayError                    (base; INTERNAL, 500)
     ├── InvalidRequest             INVALID_ARGUMENT  400  field violations (BadRequest)
     │    └── InvalidDefinition     INVALID_ARGUMENT  400  every problem, pointer as the field
     ├── NotFound                   NOT_FOUND         404
     ├── AlreadyExists              ALREADY_EXISTS    409
     ├── PermissionDenied           PERMISSION_DENIED 403
     ├── FailedPrecondition         FAILED_PRECONDITION 400
     ├── Unauthenticated            UNAUTHENTICATED   401
     ├── DeadlineExceeded           DEADLINE_EXCEEDED 504
     ├── ResourceExhausted          RESOURCE_EXHAUSTED 429 RetryInfo (a full send queue)
     ├── Unavailable                UNAVAILABLE       503
     ├── Unimplemented              UNIMPLEMENTED     501
     └── ProviderError              a provider refused or failed a call; provider_status set
          ├── ProviderRejected      INVALID_ARGUMENT  400  the provider's 400/422, with its excerpt
          ├── ProviderCredentials   FAILED_PRECONDITION 400 the provider's 401/403
          ├── ProviderRefused       FAILED_PRECONDITION 400 a 2xx whose response_map says no
          ├── ProviderRateLimited   RESOURCE_EXHAUSTED 429  RetryInfo from Retry-After
          ├── ProviderUnavailable   UNAVAILABLE       503  5xx or no answer
          └── OutcomeUnknown        DEADLINE_EXCEEDED 504  the request may have been sent: no
                                                           answer came (OUTCOME_UNKNOWN)

:func:`to_rpc_status` turns any of them into a ``grpc.Status`` with google.rpc details:
``ErrorInfo`` always (reason, domain ``msgbridge``, metadata such as ``integration`` and
``provider_status``), ``BadRequest`` for field violations, ``RetryInfo`` when a delay is known.
Messages never contain secrets: callers build them from names and statuses, not from values, and
whatever of a provider's answer they carry (a :class:`ProviderError`'s excerpt, a refusal's reason)
has been through the installation's :class:`server.security.secrets.SecretMask` first.

:meth:`GatewayError.to_stored` and :meth:`GatewayError.from_stored` keep an error as JSON and read
it back (an idempotent send's stored reply: a repeat of the send gets the same error again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "DOMAIN",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "GatewayError",
    "InvalidDefinition",
    "InvalidRequest",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProviderCredentials",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRefused",
    "ProviderRejected",
    "ProviderUnavailable",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "to_rpc_status",
]

DOMAIN = "msgbridge"

FieldViolation = tuple[str, str]  # (field, description)


class GatewayError(Exception):
    """Base of every error the service reports to a caller."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    http_status: ClassVar[int] = 500
    default_reason: ClassVar[str] = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.violations = tuple(violations)
        self.retry_after_s = retry_after_s

    def to_stored(self) -> dict[str, Any]:
        """The error as a JSON object that :meth:`from_stored` reads back. Field violations are
        not kept: the errors stored this way have none."""
        return {
            "class": type(self).__name__,
            "message": self.message,
            "reason": self.reason,
            "metadata": self.metadata,
            "retry_after_s": self.retry_after_s,
        }

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        """The error :meth:`to_stored` gave, as this class (the caller picks it by
        ``stored["class"]``, from the classes it may have stored)."""
        return cls(
            stored["message"],
            reason=stored["reason"],
            metadata=stored["metadata"],
            retry_after_s=stored["retry_after_s"],
        )


class InvalidRequest(GatewayError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    default_reason = "INVALID_REQUEST"


class InvalidDefinition(InvalidRequest):
    default_reason = "INVALID_DEFINITION"


class NotFound(GatewayError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404
    default_reason = "NOT_FOUND"


class AlreadyExists(GatewayError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(GatewayError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_reason = "PERMISSION_DENIED"


class FailedPrecondition(GatewayError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 400
    default_reason = "FAILED_PRECONDITION"


class Unauthenticated(GatewayError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    default_reason = "UNAUTHENTICATED"


class DeadlineExceeded(GatewayError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504
    default_reason = "DEADLINE_EXCEEDED"


class ResourceExhausted(GatewayError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(GatewayError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    default_reason = "UNAVAILABLE"


class Unimplemented(GatewayError):
    grpc_code = grpc.StatusCode.UNIMPLEMENTED
    http_status = 501
    default_reason = "UNIMPLEMENTED"


class ProviderError(GatewayError):
    """A provider call failed. ``provider_status`` is its HTTP status (0 when none came)."""

    def __init__(
        self,
        message: str,
        *,
        integration: str,
        provider_status: int = 0,
        excerpt: str = "",
        reason: str | None = None,
        retry_after_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        meta = {"integration": integration, "provider_status": str(provider_status)}
        if excerpt:
            meta["provider_excerpt"] = excerpt
        meta.update(metadata or {})
        super().__init__(message, reason=reason, metadata=meta, retry_after_s=retry_after_s)
        self.integration = integration
        self.provider_status = provider_status
        self.excerpt = excerpt

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        # The metadata holds what the constructor put there from the integration, the status and
        # the excerpt; they are read back from it, and the rest of it is passed on unchanged.
        metadata = stored["metadata"]
        return cls(
            stored["message"],
            integration=metadata["integration"],
            provider_status=int(metadata["provider_status"]),
            excerpt=metadata.get("provider_excerpt", ""),
            reason=stored["reason"],
            retry_after_s=stored["retry_after_s"],
            metadata=metadata,
        )


class ProviderRejected(ProviderError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    default_reason = "PROVIDER_REJECTED"


class ProviderCredentials(ProviderError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 400
    default_reason = "PROVIDER_CREDENTIALS"


class ProviderRefused(ProviderError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 400
    default_reason = "PROVIDER_REFUSED"


class ProviderRateLimited(ProviderError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    default_reason = "PROVIDER_RATE_LIMITED"


class ProviderUnavailable(ProviderError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    default_reason = "PROVIDER_UNAVAILABLE"


class OutcomeUnknown(ProviderError):
    """A request was written and no answer came (a timeout, a connection broken mid-request):
    the provider may have sent the message, so it is not sent again (docs/delivery.md,
    "Retries"). DEADLINE_EXCEEDED, as gRPC says of an operation that may have completed."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504
    default_reason = "OUTCOME_UNKNOWN"


def to_rpc_status(error: GatewayError) -> grpc.Status:
    """The ``grpc.Status`` (code, message and google.rpc details) that reports ``error``."""
    status = status_pb2.Status(code=_CODES[error.grpc_code], message=error.message)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    status.details.add().Pack(info)
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in error.violations
            ]
        )
        status.details.add().Pack(bad)
    if error.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_s * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status)


_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
}
