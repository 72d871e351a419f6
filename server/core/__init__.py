"""The gateway's core: what it does with integrations, installations, messages and events.

- :mod:`server.core.send`: the send path (API → rendered request → provider → stored message).
- :mod:`server.core.ingest`: the ingest path (webhook → matched events → store).
- :class:`IntegrationCatalog`: registered definitions, checked and cached by version.
- :class:`InstallationDirectory`: installations, their secrets and their numbers.
- Provider credentials (:class:`InstallationAuth`): OAuth2 and JWT tokens of an installation,
  sealed in the store; :class:`OAuthCallback`, the provider's redirect after an admin's consent.
- :class:`SubscriptionKeeper`: a definition's ``Subscribe``/``Unsubscribe`` requests; which step
  comes next and what its answer captures (:func:`next_step`, :func:`judge_step_answer`), shared
  with ``msgbridge test``'s offline run.
- :mod:`server.core._provider_failures`: the one mapping from a provider's failed answer (or a
  call that got none) to a :class:`~server.errors.GatewayError`, used by both of the above.
- :class:`EventHub`, :func:`follow_events` and :func:`follow_consumer`: waking the event
  stream's readers, and reading the log for them (every event after a cursor, or a durable
  consumer's leased batches).
- :class:`RetentionKeeper`: deleting what is older than the operator keeps.

Nothing here speaks gRPC; :mod:`server.api` turns requests and records into protobuf.
"""

from ._catalog import (
    Capabilities,
    IntegrationCatalog,
    LoadedIntegration,
    capabilities_of,
    definition_refused,
)
from ._events import EventHub, follow_consumer, follow_events
from ._exchange_log import ExchangeLog, token_exchanges
from ._installations import (
    WEBHOOK_TOKEN_PROPERTY,
    InstallationDirectory,
    NumberInput,
    installation_not_found,
)
from ._numbers import normalize_address, normalize_number
from ._oauth_callback import OAuthCallback
from ._provider_credentials import (
    REQUEST_TOKEN_KEYS,
    AuthorizationStatus,
    InstallationAuth,
    StoreStateStore,
    StoreTokenVault,
)
from ._provider_failures import (
    Accepted,
    judge_send_answer,
    nothing_sent,
    partially_sent,
    retry_after,
)
from ._retention import Retention, RetentionKeeper
from ._subscribe_steps import (
    Kept,
    StepFailure,
    SubscribeRun,
    SubscribeStep,
    judge_step_answer,
    next_step,
    numbered_after,
    render_step,
)
from ._subscriptions import SubscriptionKeeper
from .ingest import HeldReceipts, Ingestor, ReplayResult, event_dedupe_key
from .send import (
    OUTCOME_UNKNOWN,
    ConversationSignals,
    DeliveryQueue,
    QuickReply,
    RetryPolicy,
    SendLimits,
    SendOutcome,
    SendPath,
    SendRequest,
    Signal,
    SignalOutcome,
    SignalRequest,
    Throughput,
    build_delivery,
    check_limits,
    limits_from_json,
    limits_to_json,
    plan_requests,
    send_variables,
)

__all__ = [
    "OUTCOME_UNKNOWN",
    "REQUEST_TOKEN_KEYS",
    "WEBHOOK_TOKEN_PROPERTY",
    "Accepted",
    "AuthorizationStatus",
    "Capabilities",
    "ConversationSignals",
    "DeliveryQueue",
    "EventHub",
    "ExchangeLog",
    "HeldReceipts",
    "Ingestor",
    "InstallationAuth",
    "InstallationDirectory",
    "IntegrationCatalog",
    "Kept",
    "LoadedIntegration",
    "NumberInput",
    "OAuthCallback",
    "QuickReply",
    "ReplayResult",
    "Retention",
    "RetentionKeeper",
    "RetryPolicy",
    "SendLimits",
    "SendOutcome",
    "SendPath",
    "SendRequest",
    "Signal",
    "SignalOutcome",
    "SignalRequest",
    "StepFailure",
    "StoreStateStore",
    "StoreTokenVault",
    "SubscribeRun",
    "SubscribeStep",
    "SubscriptionKeeper",
    "Throughput",
    "build_delivery",
    "capabilities_of",
    "check_limits",
    "definition_refused",
    "event_dedupe_key",
    "follow_consumer",
    "follow_events",
    "installation_not_found",
    "judge_send_answer",
    "judge_step_answer",
    "limits_from_json",
    "limits_to_json",
    "next_step",
    "normalize_address",
    "normalize_number",
    "nothing_sent",
    "numbered_after",
    "partially_sent",
    "plan_requests",
    "render_step",
    "retry_after",
    "send_variables",
    "token_exchanges",
]
