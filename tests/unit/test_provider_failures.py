"""server.core._provider_failures alone: each provider answer or transport failure and the error
(class, gRPC code, reason, metadata, retry delay) it is reported as; and an error's stored form."""

from __future__ import annotations

import time

import grpc
import pytest

from server.core._provider_failures import (
    from_http_response,
    from_outbound_error,
    from_refusal,
    nothing_sent,
    retry_after,
)
from server.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    InvalidRequest,
    PermissionDenied,
    ProviderCredentials,
    ProviderError,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderUnavailable,
    to_rpc_status,
)
from server.outbound import (
    ConnectFailed,
    InvalidTarget,
    OutboundError,
    OutboundTimeout,
    PolicyRefused,
    ProviderResponse,
    TransportError,
)
from server.security.secrets import MASK, SecretMask

NO_SECRETS = SecretMask.of(())


def _answer(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> ProviderResponse:
    return ProviderResponse(status=status, headers=headers or {}, body=body, elapsed_s=0.01)


@pytest.mark.parametrize(
    ("status", "cls", "code", "reason"),
    [
        (400, ProviderRejected, grpc.StatusCode.INVALID_ARGUMENT, "PROVIDER_REJECTED"),
        (404, ProviderRejected, grpc.StatusCode.INVALID_ARGUMENT, "PROVIDER_REJECTED"),
        (422, ProviderRejected, grpc.StatusCode.INVALID_ARGUMENT, "PROVIDER_REJECTED"),
        (302, ProviderRejected, grpc.StatusCode.INVALID_ARGUMENT, "PROVIDER_REJECTED"),
        (401, ProviderCredentials, grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CREDENTIALS"),
        (403, ProviderCredentials, grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CREDENTIALS"),
        (429, ProviderRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED"),
        (500, ProviderUnavailable, grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        (502, ProviderUnavailable, grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        (503, ProviderUnavailable, grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        (599, ProviderUnavailable, grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
    ],
)
def test_a_non_2xx_answer_maps_by_its_status(
    status: int, cls: type[ProviderError], code: grpc.StatusCode, reason: str
) -> None:
    error = from_http_response(_answer(status, b"no"), integration="acme", secrets=NO_SECRETS)
    assert type(error) is cls
    assert (error.grpc_code, error.reason) == (code, reason)
    assert error.metadata == {
        "integration": "acme",
        "provider_status": str(status),
        "provider_excerpt": "no",
    }
    assert (error.integration, error.provider_status, error.excerpt) == ("acme", status, "no")


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "the provider refused the credentials (HTTP 401): check the installation"),
        (429, "the provider is rate limiting (HTTP 429) (slow down)"),
        (503, "the provider failed with HTTP 503 (slow down)"),
        (400, "the provider rejected the message with HTTP 400 (slow down)"),
    ],
)
def test_the_message_names_the_status_and_quotes_the_answer(status: int, message: str) -> None:
    answer = _answer(status, b"slow   down")
    assert from_http_response(answer, integration="i", secrets=NO_SECRETS).message == message


def test_an_empty_answer_has_no_excerpt() -> None:
    error = from_http_response(_answer(500), integration="i", secrets=NO_SECRETS)
    assert error.message == "the provider failed with HTTP 500"
    assert "provider_excerpt" not in error.metadata


def test_the_excerpt_is_masked_and_cut() -> None:
    answer = _answer(400, b"bad key sk-123 " + b"x" * 1000)
    error = from_http_response(answer, integration="i", secrets=SecretMask.of(["sk-123"]))
    assert "sk-123" not in error.message and "sk-123" not in error.excerpt
    assert MASK in error.excerpt
    assert len(error.excerpt) <= 300


@pytest.mark.parametrize(
    ("status", "header", "delay"),
    [
        (429, "7", 7.0),
        (503, " 2 ", 2.0),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: come back now
        (429, "soon", None),
        (500, None, None),
        (400, "7", None),  # a rejection carries no delay
        (401, "7", None),
    ],
)
def test_retry_after_becomes_the_retry_delay(
    status: int, header: str | None, delay: float | None
) -> None:
    headers = {"retry-after": header} if header is not None else {}
    error = from_http_response(
        _answer(status, headers=headers), integration="i", secrets=NO_SECRETS
    )
    assert error.retry_after_s == delay


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(_answer(429, headers={"retry-after": "12"})) == 12.0
    assert retry_after(_answer(429)) is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    delay = retry_after(_answer(429, headers={"retry-after": later}))
    assert delay is not None and 50 < delay <= 60


@pytest.mark.parametrize(
    ("refused", "message"),
    [
        ("number barred", "the provider refused the message: number barred"),
        (None, "the provider refused the message"),
        ("", "the provider refused the message"),
    ],
)
def test_a_refusal_of_the_response_map_is_failed_precondition(
    refused: str | None, message: str
) -> None:
    answer = _answer(200, b'{"status": "1"}')
    error = from_refusal(answer, refused=refused, integration="acme", secrets=NO_SECRETS)
    assert type(error) is ProviderRefused
    assert (error.grpc_code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PROVIDER_REFUSED",
    )
    assert error.message == message
    assert error.metadata == {
        "integration": "acme",
        "provider_status": "200",
        "provider_excerpt": '{"status": "1"}',
    }


def test_a_refusal_masks_what_the_provider_said() -> None:
    answer = _answer(200, b'{"error": "token tok-9 expired"}')
    error = from_refusal(
        answer, refused="token tok-9 expired", integration="i", secrets=SecretMask.of(["tok-9"])
    )
    assert "tok-9" not in error.message and "tok-9" not in error.excerpt


_POLICY = PolicyRefused(address="127.0.0.1", host="localhost", reason="loopback")


@pytest.mark.parametrize(
    ("exc", "cls", "code", "reason", "message"),
    [
        (
            ConnectFailed("connection refused by h:1"),
            ProviderUnavailable,
            grpc.StatusCode.UNAVAILABLE,
            "PROVIDER_UNREACHABLE",
            "the provider could not be reached: connection refused by h:1",
        ),
        (
            OutboundTimeout("no answer from h:1", may_have_been_sent=True),
            ProviderUnavailable,
            grpc.StatusCode.UNAVAILABLE,
            "PROVIDER_TIMEOUT",
            "the provider did not answer in time",
        ),
        (
            InvalidTarget("no host"),
            FailedPrecondition,
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVALID_PROVIDER_URL",
            "the provider URL cannot be used: no host",
        ),
        (
            _POLICY,
            PermissionDenied,
            grpc.StatusCode.PERMISSION_DENIED,
            "OUTBOUND_POLICY",
            str(_POLICY),
        ),
        (
            TransportError("connection reset by h:1"),
            ProviderUnavailable,
            grpc.StatusCode.UNAVAILABLE,
            "PROVIDER_UNAVAILABLE",
            "the provider call failed: connection reset by h:1",
        ),
        (
            OutboundError("something else"),
            ProviderUnavailable,
            grpc.StatusCode.UNAVAILABLE,
            "PROVIDER_UNAVAILABLE",
            "the provider call failed: something else",
        ),
    ],
)
def test_a_call_without_an_answer_maps_by_its_failure(
    exc: OutboundError,
    cls: type[GatewayError],
    code: grpc.StatusCode,
    reason: str,
    message: str,
) -> None:
    far = time.monotonic() + 60
    for deadline in (None, far):
        error = from_outbound_error(exc, integration="acme", deadline=deadline)
        assert type(error) is cls
        assert (error.grpc_code, error.reason, error.message) == (code, reason, message)
        assert error.metadata["integration"] == "acme"
        assert error.retry_after_s is None


def test_a_provider_error_without_an_answer_has_status_0() -> None:
    error = from_outbound_error(ConnectFailed("refused"), integration="acme")
    assert error.metadata == {"integration": "acme", "provider_status": "0"}


def test_a_timeout_at_the_callers_deadline_is_deadline_exceeded() -> None:
    timeout = OutboundTimeout("no answer", may_have_been_sent=True)
    error = from_outbound_error(timeout, integration="acme", deadline=time.monotonic())
    assert type(error) is DeadlineExceeded
    assert error.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.message == "the send's deadline passed while the provider was called"
    assert error.metadata == {"integration": "acme"}


@pytest.mark.parametrize(
    ("error", "released"),
    [
        (from_outbound_error(ConnectFailed("x"), integration="i"), True),
        (from_outbound_error(TransportError("x"), integration="i"), True),
        (from_http_response(_answer(429), integration="i", secrets=NO_SECRETS), True),
        (from_http_response(_answer(500), integration="i", secrets=NO_SECRETS), True),
        (
            from_outbound_error(OutboundTimeout("x", may_have_been_sent=False), integration="i"),
            False,
        ),
        (from_http_response(_answer(400), integration="i", secrets=NO_SECRETS), False),
        (from_http_response(_answer(401), integration="i", secrets=NO_SECRETS), False),
        (from_refusal(_answer(200), refused=None, integration="i", secrets=NO_SECRETS), False),
        (from_outbound_error(_POLICY, integration="i"), False),
        (from_outbound_error(InvalidTarget("x"), integration="i"), False),
        (DeadlineExceeded("late"), False),
    ],
)
def test_which_failures_left_nothing_sent(error: GatewayError, released: bool) -> None:
    assert nothing_sent(error) is released


@pytest.mark.parametrize(
    "error",
    [
        from_http_response(
            _answer(429, b"later", {"retry-after": "3"}), integration="i", secrets=NO_SECRETS
        ),
        from_refusal(_answer(200, b"{}"), refused="no", integration="i", secrets=NO_SECRETS),
        from_outbound_error(OutboundTimeout("x", may_have_been_sent=True), integration="i"),
        from_outbound_error(_POLICY, integration="i"),
        DeadlineExceeded("late", metadata={"integration": "i"}),
        InvalidRequest("bad", reason="IDEMPOTENCY_KEY_REUSED"),
    ],
)
def test_a_stored_error_reads_back_as_the_same_error(error: GatewayError) -> None:
    stored = error.to_stored()
    assert stored["class"] == type(error).__name__
    again = type(error).from_stored(stored)
    assert type(again) is type(error)
    assert again.to_stored() == stored
    assert to_rpc_status(again).details == to_rpc_status(error).details
    if isinstance(error, ProviderError):
        assert isinstance(again, ProviderError)
        assert (again.integration, again.provider_status, again.excerpt) == (
            error.integration,
            error.provider_status,
            error.excerpt,
        )


def test_a_stored_error_of_an_earlier_release_still_reads() -> None:
    # As a send stored a 422 before GatewayError.to_stored existed.
    stored = {
        "class": "ProviderRejected",
        "message": "the provider rejected the message with HTTP 422 (To is not valid)",
        "reason": "PROVIDER_REJECTED",
        "metadata": {
            "integration": "acme-sms",
            "provider_status": "422",
            "provider_excerpt": "To is not valid",
        },
        "retry_after_s": None,
    }
    error = ProviderRejected.from_stored(stored)
    assert error.to_stored() == stored
    assert (error.provider_status, error.excerpt) == (422, "To is not valid")
    assert FailedPrecondition.from_stored(stored).to_stored() == {
        **stored,
        "class": "FailedPrecondition",
    }
