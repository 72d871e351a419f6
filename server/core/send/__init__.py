"""The send path and the delivery queue (docs/delivery.md): a ``SendMessage`` or ``SendFile``
from the API to the provider and back.

:class:`SendPath` records the message in the store's queue and replies; :class:`DeliveryQueue`
claims due messages within their rates and has :class:`Deliverer` make an attempt
(:class:`ProviderAttempt`: render, call, judge) and record its end — SENT, FAILED, or QUEUED
again by the retry rule (``_retry``). :class:`Outcomes` hands an outcome to the callers waiting
for it. (ext) :class:`ConversationSignals` makes SendTyping and MarkRead calls at once, through
the same :class:`ProviderAttempt`. :func:`build_delivery` wires them.
"""

from .._send_limits import (
    SendLimits,
    Throughput,
    check_limits,
    effective_limits,
    limits_from_json,
    limits_to_json,
    rate_slots,
)
from ._attempt import AttemptFailed, ProviderAttempt, Sendable, plan_requests
from ._deliver import Deliverer, Outcomes
from ._queue import DeliveryQueue
from ._request import QuickReply, SendOutcome, SendRequest, send_variables
from ._retry import OUTCOME_UNKNOWN, RetryPolicy, Verdict, retry_delay, verdict
from ._sender import MessageRates, SendPath, build_delivery
from ._signals import ConversationSignals, Signal, SignalOutcome, SignalRequest

__all__ = [
    "OUTCOME_UNKNOWN",
    "AttemptFailed",
    "ConversationSignals",
    "Deliverer",
    "DeliveryQueue",
    "MessageRates",
    "Outcomes",
    "ProviderAttempt",
    "QuickReply",
    "RetryPolicy",
    "SendLimits",
    "SendOutcome",
    "SendPath",
    "SendRequest",
    "Sendable",
    "Signal",
    "SignalOutcome",
    "SignalRequest",
    "Throughput",
    "Verdict",
    "build_delivery",
    "check_limits",
    "effective_limits",
    "limits_from_json",
    "limits_to_json",
    "plan_requests",
    "rate_slots",
    "retry_delay",
    "send_variables",
    "verdict",
]
