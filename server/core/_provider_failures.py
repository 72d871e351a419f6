"""What a provider call's failure is reported as: the one mapping from a provider's answer or
transport failure to a :class:`GatewayError`, whose class fixes the gRPC code and details.

    answer or failure               error                gRPC code (reason)
    HTTP 401, 403                   ProviderCredentials  FAILED_PRECONDITION (PROVIDER_CREDENTIALS)
    HTTP 429                        ProviderRateLimited  RESOURCE_EXHAUSTED (PROVIDER_RATE_LIMITED)
    HTTP 5xx                        ProviderUnavailable  UNAVAILABLE (PROVIDER_UNAVAILABLE)
    any other non-2xx               ProviderRejected     INVALID_ARGUMENT (PROVIDER_REJECTED)
    2xx the response_map refuses    ProviderRefused      FAILED_PRECONDITION (PROVIDER_REFUSED)
     ... or a require rule fails    ProviderRefused      FAILED_PRECONDITION (PROVIDER_REFUSED)
    an errors entry's outcome (docs/format.md, "response_rules"), on any status:
     rejected                       ProviderRejected     INVALID_ARGUMENT (PROVIDER_REJECTED)
     invalid_number                 ProviderRejected     INVALID_ARGUMENT (INVALID_RECIPIENT)
     opted_out                      ProviderRefused      FAILED_PRECONDITION (RECIPIENT_OPTED_OUT)
     blocked                        ProviderRefused      FAILED_PRECONDITION (MESSAGE_BLOCKED)
     outside_window                 ProviderRefused      FAILED_PRECONDITION (TEMPLATE_REQUIRED)
     throttled                      ProviderRateLimited  RESOURCE_EXHAUSTED (PROVIDER_RATE_LIMITED)
     unavailable                    ProviderUnavailable  UNAVAILABLE (PROVIDER_UNAVAILABLE)
    no connection could be made     ProviderUnavailable  UNAVAILABLE (PROVIDER_UNREACHABLE)
    no answer in time               ProviderUnavailable  UNAVAILABLE (PROVIDER_TIMEOUT)
     ... at the caller's deadline   DeadlineExceeded     DEADLINE_EXCEEDED
    a URL that cannot be called     FailedPrecondition   FAILED_PRECONDITION (INVALID_PROVIDER_URL)
    the outbound policy refuses     PermissionDenied     PERMISSION_DENIED (OUTBOUND_POLICY)
    connection broken mid-request   ProviderUnavailable  UNAVAILABLE (PROVIDER_UNAVAILABLE)
    (ext) any of these after earlier  the same class       its gRPC code (PARTIALLY_SENT), the
    requests of the send were sent                         part's reason in ``part_reason``

An outcome's error carries the provider's code (``provider_code``) and the ``outcome`` in its
metadata; ``throttled`` and ``unavailable`` sent nothing, so the caller may retry (and the seconds
at the entry's ``retry_after`` pointer, else the answer's ``Retry-After``, if any, is the
RetryInfo). A non-2xx answer fails with the provider's status and
an excerpt of its body (docs/format.md, "response_map"); the excerpt is masked with the
installation's secrets first, since a provider's answer may echo what it was sent (docs/format.md,
"Authentication"). :func:`nothing_sent` says which of these errors left the provider without the
message, so that the caller may retry.

The send path raises these errors; the Subscribe path keeps one with its failure's text.
:func:`judge_send_answer` is the one decision on a send's answer — an ``errors`` entry, then the
status, then the ``response_map`` and ``require`` — used by the send path and by ``msgbridge check
--response``, which applies it to an answer given offline (docs/format.md, "Checking a file").
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..engine import EngineError, ErrorMatch, RequestTemplate, judge_response, map_response
from ..errors import (
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    PermissionDenied,
    ProviderCredentials,
    ProviderError,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderUnavailable,
)
from ..outbound import (
    ConnectFailed,
    InvalidTarget,
    OutboundError,
    OutboundTimeout,
    PolicyRefused,
    ProviderResponse,
)
from ..security.secrets import SecretMask

__all__ = [
    "EXCERPT",
    "PARTIALLY_SENT",
    "Accepted",
    "answer_excerpt",
    "from_error_rule",
    "from_http_response",
    "from_outbound_error",
    "from_refusal",
    "judge_send_answer",
    "nothing_sent",
    "partially_sent",
    "retry_after",
]

EXCERPT = 300  # characters of a provider's answer an error carries

# How close to the caller's deadline a provider timeout counts as the deadline itself: the outbound
# client's timeout was cut to the time left, so it fires at the deadline, give or take the clock.
_DEADLINE_SLACK_S = 0.001


def answer_excerpt(response: ProviderResponse, secrets: SecretMask) -> str:
    """The start of the provider's answer, its secrets masked."""
    return secrets.excerpt(response.body, EXCERPT, truncated=response.truncated)


def retry_after(response: ProviderResponse) -> float | None:
    """The answer's ``Retry-After`` (a delay or an HTTP date) in seconds, or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def from_http_response(
    response: ProviderResponse, *, integration: str, secrets: SecretMask
) -> ProviderError:
    """The error of a non-2xx answer."""
    status = response.status
    excerpt = answer_excerpt(response, secrets)
    said = f" ({excerpt})" if excerpt else ""
    if status in (401, 403):
        return ProviderCredentials(
            f"the provider refused the credentials (HTTP {status}): check the installation",
            integration=integration,
            provider_status=status,
            excerpt=excerpt,
        )
    if status == 429:
        return ProviderRateLimited(
            f"the provider is rate limiting (HTTP 429){said}",
            integration=integration,
            provider_status=status,
            excerpt=excerpt,
            retry_after_s=retry_after(response),
        )
    if status >= 500:
        return ProviderUnavailable(
            f"the provider failed with HTTP {status}{said}",
            integration=integration,
            provider_status=status,
            excerpt=excerpt,
            retry_after_s=retry_after(response),
        )
    return ProviderRejected(
        f"the provider rejected the message with HTTP {status}{said}",
        integration=integration,
        provider_status=status,
        excerpt=excerpt,
    )


def from_refusal(
    response: ProviderResponse,
    *,
    refused: str | None,
    integration: str,
    secrets: SecretMask,
    unmet: str | None = None,
) -> ProviderRefused:
    """The error of a 2xx answer that the ``response_map`` refuses; ``refused`` is its
    ``$error$`` capture, if any (docs/format.md, "response_map"); ``unmet`` the ``require``
    condition that did not hold, if that is why (docs/format.md, "response_rules")."""
    said = f": {secrets.excerpt(refused, EXCERPT)}" if refused else ""
    if unmet:
        said += f" ({secrets.excerpt(unmet, EXCERPT)})"
    return ProviderRefused(
        "the provider refused the message" + said,
        integration=integration,
        provider_status=response.status,
        excerpt=answer_excerpt(response, secrets),
    )


# outcome → (error class, reason, what the message says happened); docs/format.md, "response_rules".
_OUTCOMES: dict[str, tuple[type[ProviderError], str, str]] = {
    "rejected": (ProviderRejected, "PROVIDER_REJECTED", "the provider rejected the message"),
    "invalid_number": (
        ProviderRejected,
        "INVALID_RECIPIENT",
        "the provider says the recipient's number is invalid",
    ),
    "opted_out": (
        ProviderRefused,
        "RECIPIENT_OPTED_OUT",
        "the recipient has opted out of messages from this sender",
    ),
    "blocked": (ProviderRefused, "MESSAGE_BLOCKED", "the provider blocked the message"),
    "outside_window": (
        ProviderRefused,
        "TEMPLATE_REQUIRED",
        "the recipient's conversation window is closed: only a template message reaches them now",
    ),
    "throttled": (ProviderRateLimited, "PROVIDER_RATE_LIMITED", "the provider is throttling sends"),
    "unavailable": (
        ProviderUnavailable,
        "PROVIDER_UNAVAILABLE",
        "the provider could not take the message now",
    ),
}


def from_error_rule(
    response: ProviderResponse, match: ErrorMatch, *, integration: str, secrets: SecretMask
) -> ProviderError:
    """The error of an answer that a ``response_rules`` ``errors`` entry matched."""
    cls, reason, what = _OUTCOMES[match.outcome]
    metadata: dict[str, str] = {"outcome": match.outcome}
    code = secrets.excerpt(match.code, EXCERPT) if match.code else ""
    if code:
        metadata["provider_code"] = code
    excerpt = answer_excerpt(response, secrets)
    said = f" ({reason}, provider code {code})" if code else f" ({reason})"
    retry = None
    if cls in (ProviderRateLimited, ProviderUnavailable):
        retry = _seconds(match.retry_after)
        if retry is None:
            retry = retry_after(response)
    return cls(
        f"{what}{said}: HTTP {response.status}" + (f" {excerpt}" if excerpt else ""),
        integration=integration,
        provider_status=response.status,
        excerpt=excerpt,
        reason=reason,
        retry_after_s=retry,
        metadata=metadata,
    )


#: (ext) The longest wait an answer's ``retry_after`` value is taken for (docs/format.md,
#: "response_rules"); a longer one is the provider's, but the send's own limits end it sooner.
_MAX_RETRY_AFTER_S = 86_400.0


def _seconds(text: str | None) -> float | None:
    """(ext) An errors entry's ``retry_after`` value — a number of seconds, at most a day — or
    None when there is none or it is not one."""
    if text is None or len(text) > 32:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    if not 0.0 <= seconds <= _MAX_RETRY_AFTER_S:  # NaN fails both
        return None
    return seconds


def from_outbound_error(
    exc: OutboundError, *, integration: str, deadline: float | None = None
) -> GatewayError:
    """The error of a call that got no answer. ``deadline`` is the caller's
    ``time.monotonic()`` deadline, if it has one: a timeout at it is the caller's
    DEADLINE_EXCEEDED rather than a provider too slow to answer."""
    if isinstance(exc, ConnectFailed):
        return ProviderUnavailable(
            f"the provider could not be reached: {exc}",
            integration=integration,
            reason="PROVIDER_UNREACHABLE",
        )
    if isinstance(exc, OutboundTimeout):
        if deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK_S:
            return DeadlineExceeded(
                "the send's deadline passed while the provider was called",
                metadata={"integration": integration},
            )
        return ProviderUnavailable(
            "the provider did not answer in time",
            integration=integration,
            reason="PROVIDER_TIMEOUT",
        )
    if isinstance(exc, InvalidTarget):
        return FailedPrecondition(
            f"the provider URL cannot be used: {exc}",
            reason="INVALID_PROVIDER_URL",
            metadata={"integration": integration},
        )
    if isinstance(exc, PolicyRefused):
        return PermissionDenied(
            str(exc), reason="OUTBOUND_POLICY", metadata={"integration": integration}
        )
    return ProviderUnavailable(f"the provider call failed: {exc}", integration=integration)


def nothing_sent(error: GatewayError) -> bool:
    """Whether the failure left the provider without the message, so that sending it again cannot
    send it twice: the provider could not be reached or answered 429/5xx. A timeout is not one:
    the provider may have sent the message; nor is a failure after earlier parts were sent."""
    return isinstance(error, ProviderUnavailable | ProviderRateLimited) and (
        error.reason not in ("PROVIDER_TIMEOUT", PARTIALLY_SENT)
    )


#: (ext) The reason of a send that failed after some of its requests were sent (docs/format.md,
#: "Several requests per send").
PARTIALLY_SENT = "PARTIALLY_SENT"


def partially_sent(error: GatewayError, part: int, parts: int) -> GatewayError:
    """``error``, of request ``part`` of ``parts`` (1-based), as the failure of a send whose
    earlier requests were sent: the same class (so the same gRPC code), reason
    ``PARTIALLY_SENT``, and which part failed and why in its metadata. Nothing to retry: the
    sent parts would be sent again."""
    stored = error.to_stored()
    return type(error).from_stored(
        {
            **stored,
            "message": f"request {part} of {parts} failed after {part - 1} were sent: "
            f"{error.message}",
            "reason": PARTIALLY_SENT,
            "metadata": {
                **error.metadata,
                "part": str(part),
                "parts": str(parts),
                "part_reason": error.reason,
            },
            "retry_after_s": None,
        }
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Accepted:
    """A send answer that makes the message ``sent``, with the provider's id (None: unknown)."""

    provider_message_id: str | None


def judge_send_answer(
    template: RequestTemplate,
    response: ProviderResponse,
    *,
    integration: str,
    secrets: Callable[[], SecretMask],
) -> Accepted | ProviderError:
    """What a provider's answer to a SendMessage or SendFile makes of the send: accepted, or the
    error the caller gets (docs/format.md, "response_map" and "response_rules"). ``secrets`` is
    called only when the answer fails, for what masks the error's excerpt. Pure: no I/O."""
    status = response.status
    content_type = response.headers.get("content-type")
    ok = 200 <= status < 300
    mapped = None
    if ok:
        try:
            mapped = map_response(template.response_map, response.body, content_type)
        except EngineError:
            mapped = None
    # response_rules: an errors entry names the failure on any answer; require conditions
    # must hold on a 2xx one (docs/format.md, "response_rules").
    judged = judge_response(
        template.response_rules,
        status,
        response.body,
        content_type,
        mapped.captures if mapped else {},
    )
    if judged.error is not None:
        return from_error_rule(response, judged.error, integration=integration, secrets=secrets())
    if not ok:
        return from_http_response(response, integration=integration, secrets=secrets())
    if (mapped is not None and not mapped.accepted) or judged.unmet is not None:
        return from_refusal(
            response,
            refused=mapped.error if mapped else None,
            integration=integration,
            secrets=secrets(),
            unmet=judged.unmet,
        )
    return Accepted(provider_message_id=mapped.message_id if mapped else None)
