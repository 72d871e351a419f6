"""(ext) Conversation signals: SendTyping and MarkRead (docs/format.md, "Conversation signals").

    validate → resolve the installation holding ``from`` (as a send does) → the definition's
    request for the signal (none: FAILED_PRECONDITION, NOT_SUPPORTED) → one provider call
    (``ProviderAttempt.call``: render, bearer token, the outbound client and the exchange log)
    → judge the answer as a send's (``judge_send_answer``)

A signal is not a message: nothing is recorded but its exchange, it is never queued (a typing
indicator shown late is worse than none) and never retried — the caller, who knows whether the
moment has passed, may call again. It is not held back by the installation's send rates or by an
opt-out: it carries no text.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ...engine import RequestTemplate, Value
from ...errors import FailedPrecondition, GatewayError, InvalidRequest
from ...store import ExchangeKind
from .._catalog import IntegrationCatalog, LoadedIntegration
from .._installations import InstallationDirectory
from .._provider_failures import judge_send_answer
from ._attempt import AttemptFailed, CallTarget, ProviderAttempt
from ._deliver import resolve_sender
from ._request import conversation_violations

__all__ = ["ConversationSignals", "Signal", "SignalOutcome", "SignalRequest"]

logger = logging.getLogger(__name__)


class Signal(enum.Enum):
    """A conversation signal, by the name of its RPC and of its definition section."""

    TYPING = "SendTyping"
    READ = "MarkRead"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalRequest:
    """A SendTyping or MarkRead call, as the service hands it over. ``provider_message_id`` is
    the provider's id of the inbound message it is about (``$messageid$``): required to mark
    one read, optional for typing."""

    signal: Signal
    org_id: str
    from_number: str
    to: str
    provider_message_id: str = ""
    integration_id: str = ""
    extension: str = ""
    domain: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalOutcome:
    """The provider took the signal."""

    installation_id: str
    integration_id: str
    provider_status: int


class ConversationSignals:
    """Sends conversation signals: one :meth:`send` per SendTyping or MarkRead call."""

    def __init__(
        self,
        *,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        attempt: ProviderAttempt,
    ) -> None:
        self._catalog = catalog
        self._installations = installations
        self._attempt = attempt

    async def send(self, request: SignalRequest) -> SignalOutcome:
        """Make the signal's one request now; raise the error its answer is."""
        _validate(request)
        installation, integration = await resolve_sender(
            self._installations,
            self._catalog,
            org_id=request.org_id,
            from_number=request.from_number,
            integration_id=request.integration_id,
        )
        template = signal_template(request.signal, integration)
        variables = self._installations.property_values(installation) | signal_variables(
            request, self._installations.webhook_url(installation)
        )
        target = CallTarget(
            installation=installation,
            integration=integration,
            kind=ExchangeKind.SIGNAL,
            message_id=None,
        )
        started = time.perf_counter()
        try:
            status = await self._call(template, variables, target)
        except GatewayError as error:
            answered = error.metadata.get("provider_status", "")
            status = int(answered) if answered.isdigit() else 0
            _log_end(request.signal, integration.id, error, status, started)
            raise
        _log_end(request.signal, integration.id, None, status, started)
        return SignalOutcome(
            installation_id=installation.id,
            integration_id=integration.id,
            provider_status=status,
        )

    async def _call(
        self, template: RequestTemplate, variables: Mapping[str, Value], target: CallTarget
    ) -> int:
        """The signal's one provider call (a token renewed once on 401), judged as a send's
        answer: the provider's status, or the error the answer is."""
        installation, definition = target.installation, target.integration.definition
        bearer = await self._attempt.bearer(installation, definition)
        try:
            response, bearer, _ = await self._attempt.call(template, variables, target, bearer)
        except AttemptFailed as failed:
            raise failed.error from None
        judged = judge_send_answer(
            template,
            response,
            integration=target.integration.id,
            secrets=lambda: self._attempt.secrets(installation, definition, bearer),
        )
        if isinstance(judged, GatewayError):
            raise judged
        return response.status


def _log_end(
    signal: Signal, integration: str, error: GatewayError | None, status: int, started: float
) -> None:
    """One line per signal that reached its provider call, as the send path logs each send."""
    logger.info(
        "signal ended",
        extra={
            "signal": signal.value,
            "integration": integration,
            "outcome": "sent" if error is None else "failed",
            "code": "OK" if error is None else error.grpc_code.name,
            "reason": "" if error is None else error.reason,
            "provider_status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


def signal_template(signal: Signal, integration: LoadedIntegration) -> RequestTemplate:
    """The definition's request for ``signal``; FAILED_PRECONDITION (``NOT_SUPPORTED``) when it
    has none."""
    definition = integration.definition
    template = definition.send_typing if signal is Signal.TYPING else definition.mark_read
    if template is None:
        raise FailedPrecondition(
            f"the integration {integration.id!r} has no {signal.value} request: its provider "
            "takes no such signal through this definition",
            reason="NOT_SUPPORTED",
            metadata={"integration": integration.id, "signal": signal.value},
        )
    return template


def signal_variables(request: SignalRequest, webhook_url: str) -> dict[str, Value]:
    """The variables a signal's request is rendered with, besides the installation's property
    values (docs/format.md, "Conversation signals")."""
    return {
        "from": request.from_number,
        "to": request.to,
        "messageid": request.provider_message_id or None,
        "extension": request.extension or None,
        "domain": request.domain or None,
        "orgid": request.org_id,
        "webhook_url": webhook_url,
    }


def _validate(request: SignalRequest) -> None:
    """INVALID_ARGUMENT with every problem of the request."""
    violations = conversation_violations(request.org_id, request.from_number, request.to)
    if request.signal is Signal.READ and not request.provider_message_id.strip():
        violations.append(
            ("provider_message_id", "required: the provider's id of the inbound message read")
        )
    if len(request.provider_message_id) > 1024:
        violations.append(("provider_message_id", "at most 1,024 characters"))
    if violations:
        raise InvalidRequest(
            f"the {request.signal.value} request is not valid", violations=violations
        )
