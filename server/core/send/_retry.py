"""When a failed attempt is tried again (docs/delivery.md, "Retries"): the one rule, pure.

    failure                                             verdict
    no connection could be made                         retry (nothing was sent)
    HTTP 429, HTTP 503, an errors entry's throttled     retry, after the answer's Retry-After
      or unavailable outcome (the definition declares     when it has one
      that answer safe)
    no answer in time, connection broken mid-request    unknown: FAILED with reason
                                                          OUTCOME_UNKNOWN — or retry, when the
                                                          request is provider_deduplicates
    any other answer or failure                         final: FAILED with its error

A retry waits ``initial_s * 2**(n-1)`` (at most ``max_s``), halved at random ("equal jitter":
between half of it and all of it), or the provider's ``Retry-After``; it is given up — the message
FAILED with its last error — after ``max_attempts`` attempts or when the next attempt would come
later than ``max_age_s`` after the message was accepted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ...errors import GatewayError, ProviderRateLimited, ProviderUnavailable
from .._provider_failures import PARTIALLY_SENT

__all__ = ["OUTCOME_UNKNOWN", "RetryPolicy", "Verdict", "retry_delay", "verdict"]

#: The reason of a message whose request may or may not have reached the provider.
OUTCOME_UNKNOWN: Final = "OUTCOME_UNKNOWN"


class Verdict(enum.Enum):
    RETRY = "retry"
    UNKNOWN = "unknown"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a message is tried (settings ``send_max_attempts``,
    ``send_retry_initial_s``, ``send_retry_max_s``, ``send_max_age_s``)."""

    max_attempts: int = 5
    initial_s: float = 0.5
    max_s: float = 60.0
    max_age_s: float = 3600.0


def verdict(error: GatewayError, *, provider_deduplicates: bool = False) -> Verdict:
    """What a failed attempt's ``error`` allows (see the table above)."""
    if error.reason == PARTIALLY_SENT:
        return Verdict.FINAL  # a retry would send the sent parts again
    if isinstance(error, ProviderRateLimited):
        return Verdict.RETRY
    if isinstance(error, ProviderUnavailable):
        if error.reason == "PROVIDER_UNREACHABLE" or error.metadata.get("outcome") == "unavailable":
            return Verdict.RETRY
        if error.provider_status == 503:
            return Verdict.RETRY
        if error.provider_status:
            return Verdict.FINAL  # an answer: the provider failed it, and says nothing more
        return Verdict.RETRY if provider_deduplicates else Verdict.UNKNOWN
    return Verdict.FINAL


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after_s: float | None, random: float
) -> float:
    """Seconds before attempt ``attempt + 1``: the provider's ``retry_after_s`` when it gave
    one, else the backoff with ``random`` (uniform in [0, 1)) as its jitter."""
    if retry_after_s is not None:
        return max(0.0, retry_after_s)
    ceiling = min(policy.max_s, policy.initial_s * 2 ** max(0, attempt - 1))
    return float(ceiling / 2 + ceiling / 2 * random)
