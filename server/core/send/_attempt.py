"""One attempt to send a message: the definition's requests in order, each made once
"Several requests per send"), with the answer judged by the definition.

    plan (engine) → bearer token (OAuth2/JWT) → for each request: render → provider call
    (outbound client) → judge the answer (core/_provider_failures.py)

An attempt never waits and never retries — the queue decides that (core/send/_retry.py) — except
that a bearer token the provider no longer takes (401) is renewed once and the request made again:
the provider refused it, so nothing was sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ...engine import (
    Definition,
    RenderedRequest,
    RenderError,
    RequestStep,
    RequestTemplate,
    TooManyRequests,
    Value,
    plan_send,
    render_request,
)
from ...errors import FailedPrecondition, GatewayError, InvalidRequest
from ...oauth import installation_secrets
from ...outbound import OutboundClient, OutboundError, PolicyRefused, ProviderResponse
from ...security.secrets import SecretMask
from ...store import ExchangeKind, InstallationRecord, MessageRecord
from ...tracing import span
from .._capped_cache import CappedCache
from .._catalog import LoadedIntegration
from .._exchange_log import ExchangeLog, send_logged
from .._installations import InstallationDirectory
from .._provider_credentials import InstallationAuth
from .._provider_failures import from_outbound_error, judge_send_answer, partially_sent
from ._request import SendOutcome, SendRequest, send_variables

__all__ = ["AttemptFailed", "CallTarget", "ProviderAttempt", "Sendable", "plan_requests"]


@dataclass(frozen=True, slots=True)
class Sendable:
    """A message with what sending it needs: its installation, the integration as the
    installation's choices make it, the definition's request for its kind, and its request."""

    message: MessageRecord
    installation: InstallationRecord
    integration: LoadedIntegration
    template: RequestTemplate
    request: SendRequest


@dataclass(frozen=True, slots=True)
class CallTarget:
    """Whose provider call a request is, as its exchange is kept: the installation, the
    integration as its choices make it, the kind of exchange, and the message it is for (None:
    for no message — (ext) a conversation signal)."""

    installation: InstallationRecord
    integration: LoadedIntegration
    kind: ExchangeKind
    message_id: str | None


class AttemptFailed(Exception):
    """The attempt failed with ``error`` after ``calls`` provider calls; ``sent`` are the
    outcomes of its requests that were sent before (a send of several requests);
    ``deduplicates``: the request that failed is ``provider_deduplicates`` (docs/format.md)."""

    def __init__(
        self,
        error: GatewayError,
        calls: int,
        sent: Sequence[SendOutcome] = (),
        *,
        deduplicates: bool = False,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.calls = calls
        self.sent = tuple(sent)
        self.deduplicates = deduplicates


class ProviderAttempt:
    """Makes attempts: :meth:`make` once per attempt of a message."""

    def __init__(
        self,
        *,
        installations: InstallationDirectory,
        outbound: OutboundClient,
        provider_timeout_s: float,
        auth: InstallationAuth | None = None,
        exchanges: ExchangeLog | None = None,
    ) -> None:
        self._installations = installations
        self._outbound = outbound
        self._timeout_s = provider_timeout_s
        self._auth = auth
        self._exchanges = exchanges

    async def make(self, sendable: Sendable) -> SendOutcome:
        """Make the message's requests in order; its outcome (``calls`` in ``attempts``), or
        raise :class:`AttemptFailed`."""
        message, installation = sendable.message, sendable.installation
        variables = self._installations.property_values(installation) | send_variables(
            sendable.request, message.id, self._installations.webhook_url(installation)
        )
        calls = 0
        sent: list[SendOutcome] = []
        try:
            steps = plan_requests(sendable.template, variables)
            bearer = await self.bearer(installation, sendable.integration.definition)
        except GatewayError as error:
            raise AttemptFailed(error, 0) from None
        for number, step in enumerate(steps, 1):
            try:
                outcome, bearer, made = await self._call_one(step, sendable, bearer)
            except AttemptFailed as failed:
                calls += failed.calls
                reported = failed.error
                if sent:
                    reported = partially_sent(reported, number, len(steps))
                raise AttemptFailed(
                    reported, calls, sent, deduplicates=failed.deduplicates
                ) from None
            calls += made
            sent.append(outcome)
        if len(sent) == 1:
            return sent[0]  # one request: its outcome (its calls are all the calls made)
        return replace(sent[0], attempts=calls, provider_message_ids=_ids(sent))

    async def _call_one(
        self, step: RequestStep, sendable: Sendable, bearer: str | None
    ) -> tuple[SendOutcome, str | None, int]:
        """One request of the attempt: its outcome, the bearer token it ended with and the calls
        it made; a failure is raised as :class:`AttemptFailed`."""
        message, template = sendable.message, step.template
        target = CallTarget(
            installation=sendable.installation,
            integration=sendable.integration,
            kind=ExchangeKind.RETRY if message.attempt_log else ExchangeKind.SEND,
            message_id=message.id,
        )
        response, bearer, calls = await self.call(template, step.variables, target, bearer)
        try:
            return self._outcome(response, template, sendable, calls, bearer), bearer, calls
        except GatewayError as error:
            raise AttemptFailed(error, calls, deduplicates=template.provider_deduplicates) from None

    async def call(
        self,
        template: RequestTemplate,
        variables: Mapping[str, Value],
        target: CallTarget,
        bearer: str | None,
    ) -> tuple[ProviderResponse, str | None, int]:
        """Render ``template`` and make it, once more with a renewed token when the provider no
        longer takes ``bearer`` (401): the answer, the bearer token it ended with and the calls
        made. A failure is raised as :class:`AttemptFailed`; the answer is not judged here."""
        integration, installation = target.integration, target.installation
        calls = 0
        try:
            rendered = _render(integration, template, variables, installation, bearer)
            renewed = False
            while True:
                calls += 1
                response = await self._call(rendered, target, bearer)
                if response.status == 401 and bearer and not renewed and self._auth:
                    # A token the provider no longer takes: renew it once and try again.
                    fresh = await self._auth.after_unauthorized(
                        installation, integration.definition, bearer
                    )
                    if fresh:
                        renewed, bearer = True, fresh
                        rendered = _render(integration, template, variables, installation, bearer)
                        continue
                return response, bearer, calls
        except GatewayError as error:
            raise AttemptFailed(error, calls, deduplicates=template.provider_deduplicates) from None

    async def _call(
        self, rendered: RenderedRequest, target: CallTarget, bearer: str | None
    ) -> ProviderResponse:
        """One provider call, kept in the exchange log (masked) when there is one."""
        installation, integration = target.installation, target.integration
        try:
            return await send_logged(
                self._outbound,
                rendered,
                timeout=self._timeout_s,
                integration=integration.id,
                log=self._exchanges,
                mask=lambda: self.secrets(installation, integration.definition, bearer),
                installation=installation,
                kind=target.kind,
                message_id=target.message_id,
            )
        except OutboundError as exc:
            raise from_outbound_error(exc, integration=integration.id) from None

    async def bearer(self, installation: InstallationRecord, definition: Definition) -> str | None:
        """The bearer token the installation's calls carry (OAuth2, JWT), if its definition uses
        one."""
        if self._auth is None:
            return None
        try:
            return await self._auth.bearer_token(installation, definition)
        except PolicyRefused as exc:
            raise from_outbound_error(exc, integration=definition.id) from None

    def _outcome(
        self,
        response: ProviderResponse,
        template: RequestTemplate,
        sendable: Sendable,
        calls: int,
        bearer: str | None,
    ) -> SendOutcome:
        """What the provider's answer makes of the request, or raise the error it is."""
        installation, integration = sendable.installation, sendable.integration
        judged = judge_send_answer(
            template,
            response,
            integration=integration.id,
            secrets=lambda: self.secrets(installation, integration.definition, bearer),
        )
        if isinstance(judged, GatewayError):
            raise judged
        return SendOutcome(
            message_id=sendable.message.id,
            provider_message_id=judged.provider_message_id,
            provider_status=response.status,
            attempts=calls,
            installation_id=installation.id,
            integration_id=integration.id,
            encoding=sendable.message.encoding,
            segments=sendable.message.segments,
        )

    def secrets(
        self, installation: InstallationRecord, definition: Definition, bearer: str | None = None
    ) -> SecretMask:
        """What masks a provider's answer before it is kept or returned: the installation's
        secrets, the token this call carried and the OAuth2 tokens known for the installation
        (docs/format.md, "Authentication")."""
        properties = self._installations.property_values(installation)
        known = self._auth.known_tokens(installation.id) if self._auth else ()
        # Every provider call of a send masks its exchange: the mask is kept, keyed by what it
        # is made of — the deciphered properties and the definition by identity (checked on a
        # hit: an id is only reused once its object is gone), the tokens by value.
        key = (id(properties), id(definition), bearer, known)
        found = _MASKS.get(key)
        if found is None or found[0] is not properties or found[1] is not definition:
            mask = installation_secrets(definition, properties, tokens=(bearer, *known))
            found = _MASKS.put(key, (properties, definition, mask))
        return found[2]


_MASKS: CappedCache[
    tuple[int, int, str | None, tuple[str, ...]], tuple[Mapping[str, Value], Definition, SecretMask]
] = CappedCache(1_000)


def _ids(sent: Sequence[SendOutcome]) -> tuple[str, ...]:
    """Every sent request's provider id, in order ("" where its answer had none)."""
    return tuple(o.provider_message_id or "" for o in sent)


def plan_requests(
    template: RequestTemplate, variables: Mapping[str, Value]
) -> tuple[RequestStep, ...]:
    """The send's requests (docs/format.md, "Several requests per send"); more than the bound
    is the caller's error, before anything is sent."""
    try:
        return plan_send(template, variables)
    except TooManyRequests as exc:
        raise InvalidRequest(
            str(exc),
            reason="TOO_MANY_REQUESTS",
            violations=[("text", str(exc))],
        ) from None


def _render(
    integration: LoadedIntegration,
    template: RequestTemplate,
    variables: Mapping[str, Value],
    installation: InstallationRecord,
    bearer: str | None,
) -> RenderedRequest:
    with span("render", {"msgbridge.integration": integration.id}):
        try:
            return render_request(
                integration.definition,
                template,
                variables,
                bearer_token=bearer,
                default_region=installation.default_region,
            )
        except RenderError as exc:
            raise FailedPrecondition(
                f"the request cannot be built from the installation's settings: {exc}",
                reason="RENDER_FAILED",
                metadata={"integration": integration.id, "pointer": exc.pointer},
            ) from None
