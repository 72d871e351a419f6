"""The send path: SendMessage and SendFile from request to recorded result.

    resolve installation (org + from) → idempotency claim (records the message: docs/format.md,
    "Receipts")
    → render (engine) → provider call (outbound client; retried only where nothing can have been
    sent) → map the answer (engine) → record the result

Idempotency: a key is claimed atomically in the store (a unique key per organisation). Calls with
the same key in this process wait for the first one's result; a later call gets the stored reply
(or the stored error) without calling the provider. A failure that left nothing sent (connection
refused, 429, 5xx) releases the key so the caller may retry it; a timeout does not, since the
provider may have sent the message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime

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
from ...errors import (
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderCredentials,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderUnavailable,
    Unavailable,
)
from ...oauth import installation_secrets
from ...outbound import (
    ConnectFailed,
    OutboundClient,
    OutboundError,
    PolicyRefused,
    ProviderResponse,
)
from ...security.secrets import SecretMask
from ...store import (
    UNSET,
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    Store,
)
from .._catalog import IntegrationCatalog, LoadedIntegration
from .._installations import InstallationDirectory
from .._numbers import normalize_number
from .._provider_credentials import InstallationAuth
from .._provider_failures import (
    from_outbound_error,
    judge_send_answer,
    nothing_sent,
    partially_sent,
    retry_after,
)

__all__ = ["SendOutcome", "SendPath", "SendRequest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRequest:
    """A SendMessage or SendFile call, as the service hands it over."""

    kind: MessageKind
    org_id: str
    from_number: str
    to: str
    text: str = ""
    media_url: str = ""
    # (ext) the message's further files after media_url (docs/format.md, "Several requests per
    # send"), at most MAX_MEDIA_URLS - 1
    media_urls: tuple[str, ...] = ()
    media_type: str = ""
    filename: str = ""
    extension: str = ""
    domain: str = ""
    integration_id: str = ""
    idempotency_key: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What tells a repeat of this request from another request with the same key."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.media_urls:  # a request of one file keeps the fingerprint it always had
            del values["media_urls"]
        values["kind"] = str(self.kind)
        values["metadata"] = dict(sorted(self.metadata.items()))
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class SendOutcome:
    """A send the provider accepted. ``replayed``: the reply of an earlier call with the same
    idempotency key, given again without calling the provider."""

    message_id: str
    provider_message_id: str | None
    provider_status: int
    attempts: int
    installation_id: str
    integration_id: str
    replayed: bool = False
    # (ext) every request's provider id in order ("" where none) when the send made several
    # (docs/format.md, "Several requests per send"); empty for one request.
    provider_message_ids: tuple[str, ...] = ()

    def to_json(self) -> str:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.provider_message_ids:  # a reply of one request is stored as it always was
            del values["provider_message_ids"]
        return json.dumps({"ok": values})


# The reply kept with an idempotent send's message, for its repeats: {"ok": outcome} or
# {"error": GatewayError.to_stored()}. Messages in databases hold this format: read it unchanged.


def _error_json(error: GatewayError) -> str:
    return json.dumps({"error": error.to_stored()})


def _stored_reply(reply_json: str) -> SendOutcome | GatewayError:
    data = json.loads(reply_json)
    if "ok" in data:
        ok = data["ok"]
        ids = tuple(ok.get("provider_message_ids", ()))
        return SendOutcome(**{**ok, "replayed": True, "provider_message_ids": ids})
    stored = data["error"]
    return _STORED_ERRORS.get(stored["class"], FailedPrecondition).from_stored(stored)


# The errors a failed send may store; anything else is read back as FAILED_PRECONDITION.
_STORED_ERRORS: dict[str, type[GatewayError]] = {
    cls.__name__: cls
    for cls in (
        ProviderRejected,
        ProviderCredentials,
        ProviderRefused,
        ProviderRateLimited,
        ProviderUnavailable,
        DeadlineExceeded,
        FailedPrecondition,
        PermissionDenied,
        InvalidRequest,
    )
}


class SendPath:
    """Sends messages and files: one :meth:`send` per SendMessage or SendFile call."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        outbound: OutboundClient,
        provider_timeout_s: float,
        max_attempts: int,
        auth: InstallationAuth | None = None,
        on_sent: Callable[[MessageRecord], Awaitable[None]] | None = None,
    ) -> None:
        self._auth = auth
        self._store = store
        self._catalog = catalog
        self._installations = installations
        self._outbound = outbound
        self._provider_timeout_s = provider_timeout_s
        self._max_attempts = max_attempts
        # Called with the recorded message once the provider accepted it (receipts held for it
        # are completed then: docs/format.md, "Receipts").
        self._on_sent = on_sent
        # Calls with one idempotency key in this process: the first one's fingerprint and result.
        self._inflight: dict[tuple[str, str], tuple[str, asyncio.Future[SendOutcome]]] = {}
        # A claimed message not answered within this is taken to belong to a process that died.
        self._stale_after_s = 2 * provider_timeout_s * max_attempts + 60

    async def send(self, request: SendRequest, *, deadline: float) -> SendOutcome:
        """Send, or return the stored outcome of the same idempotency key.

        ``deadline`` is a ``time.monotonic()`` instant; past it the send fails with
        DEADLINE_EXCEEDED (the message may still have been sent if the provider was called).
        """
        _validate(request)
        if not request.idempotency_key:
            return await self._send_new(request, deadline, None)
        return await self._send_once(request, deadline)

    async def _send_once(self, request: SendRequest, deadline: float) -> SendOutcome:
        """Send under the request's idempotency key: a call with the key already running here
        waits for that one's result instead."""
        key = (request.org_id, request.idempotency_key)
        fingerprint = request.fingerprint()
        running = self._inflight.get(key)
        if running is not None:
            if running[0] != fingerprint:
                raise _key_reused()
            return replace(await asyncio.shield(running[1]), replayed=True)
        future: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (fingerprint, future)
        try:
            outcome = await self._send_new(request, deadline, fingerprint)
        except _Replay as replay:
            future.set_result(replay.outcome)
            return replay.outcome
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved here, so an unawaited future logs nothing
            else:
                future.cancel()
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            self._inflight.pop(key, None)

    async def _send_new(
        self, request: SendRequest, deadline: float, fingerprint: str | None
    ) -> SendOutcome:
        """Record the message (claiming its idempotency key, if it has one; ``fingerprint`` is
        then the request's), call the provider and record what it answered."""
        installation, integration = await self._resolve(request)
        template = _template(request, integration)
        message, created = await self._store.claim_message(
            _new_message(request, installation, integration, fingerprint)
        )
        if not created:
            message = self._resumable(message, fingerprint)
        outcome = await self._call_provider(
            message, installation, integration, template, request, deadline
        )
        sent = await self._store.update_message(
            message.id,
            state=MessageState.SENT,
            provider_message_id=outcome.provider_message_id,
            provider_status=outcome.provider_status,
            attempts=outcome.attempts,
            reply_json=outcome.to_json() if message.idempotency_key else None,
            provider_message_ids=outcome.provider_message_ids or UNSET,
        )
        if self._on_sent is not None:  # also without a provider id: receipts held by our id
            await self._on_sent(sent)
        return outcome

    def _resumable(self, stored: MessageRecord, fingerprint: str | None) -> MessageRecord:
        """The message to send again for a repeated key, or raise what the repeat gets instead."""
        if stored.request_fingerprint != fingerprint:
            raise _key_reused()
        if stored.reply_json is not None:
            reply = _stored_reply(stored.reply_json)
            if isinstance(reply, GatewayError):
                raise reply
            raise _Replay(reply)
        if stored.state is MessageState.FAILED:
            return stored  # a failure that sent nothing released the key
        age = (datetime.now(UTC) - stored.updated_at).total_seconds()
        if stored.state is MessageState.PENDING and age > self._stale_after_s:
            return stored  # claimed by a process that died while calling the provider
        raise Unavailable(
            "a send with this idempotency key is in progress; retry later",
            reason="SEND_IN_PROGRESS",
            retry_after_s=1.0,
        )

    async def _resolve(self, request: SendRequest) -> tuple[InstallationRecord, LoadedIntegration]:
        """The installation that sends: the organisation's enabled one holding ``from``
        (docs/format.md, "Sending")."""
        enabled = list(await self._installations.enabled_for_org(request.org_id))
        if request.integration_id:
            enabled = [c for c in enabled if c.integration_id == request.integration_id]
        if not enabled:
            what = f" of integration {request.integration_id!r}" if request.integration_id else ""
            raise NotFound(
                f"organisation {request.org_id!r} has no enabled installation{what}",
                reason="INSTALLATION_NOT_FOUND",
                metadata={"org": request.org_id},
            )
        holders = [
            c
            for c in enabled
            if normalize_number(request.from_number, c.default_region)
            in {n.number for n in c.numbers}
        ]
        if not holders:
            raise PermissionDenied(
                "the from number is not a number of the organisation's installations",
                reason="NUMBER_NOT_ASSIGNED",
                metadata={"org": request.org_id, "from": request.from_number},
            )
        if len(holders) > 1:
            raise InvalidRequest(
                "several integrations hold this number; name one with integration_id",
                reason="AMBIGUOUS_INTEGRATION",
                violations=[("integration_id", "required: several integrations hold the number")],
            )
        installation = holders[0]
        integration = await self._catalog.get(installation.integration_id)
        return installation, _chosen(integration, installation)

    async def _call_provider(
        self,
        message: MessageRecord,
        installation: InstallationRecord,
        integration: LoadedIntegration,
        template: RequestTemplate,
        request: SendRequest,
        deadline: float,
    ) -> SendOutcome:
        """Make the send's requests in order (one, unless the definition says otherwise:
        docs/format.md, "Several requests per send"), each tried again only where nothing can
        have been sent or where the provider says when to; a failure is recorded on the message
        before it is raised."""
        variables = self._installations.property_values(installation) | send_variables(
            request, message.id, self._installations.webhook_url(installation)
        )
        attempts = 0
        sent: list[SendOutcome] = []
        definition = integration.definition
        try:
            steps = plan_requests(template, variables)
            bearer = await self._bearer(installation, definition)
            for number, step in enumerate(steps, 1):
                try:
                    outcome, bearer = await self._call_one(
                        step, message, installation, integration, bearer, deadline
                    )
                except _Attempted as failed:
                    attempts += failed.attempts
                    if not sent:
                        raise failed.error from None
                    raise partially_sent(failed.error, number, len(steps)) from None
                attempts += outcome.attempts
                sent.append(outcome)
        except GatewayError as error:
            await self._record_failure(message, error, attempts, sent)
            raise
        except (asyncio.CancelledError, TimeoutError):
            await asyncio.shield(
                self._record_failure(
                    message,
                    DeadlineExceeded(
                        "the send was cancelled or its deadline passed",
                        metadata={"integration": integration.id},
                    ),
                    attempts,
                    sent,
                )
            )
            raise
        if len(sent) == 1:
            return sent[0]  # one request: its outcome, as it always was
        return replace(sent[0], attempts=attempts, provider_message_ids=_ids(sent))

    async def _call_one(
        self,
        step: RequestStep,
        message: MessageRecord,
        installation: InstallationRecord,
        integration: LoadedIntegration,
        bearer: str | None,
        deadline: float,
    ) -> tuple[SendOutcome, str | None]:
        """One request of the send, with its retries: its outcome and the bearer token it ended
        with; a failure is raised as :class:`_Attempted` (with the attempts it made)."""
        attempts = 0
        template, variables = step.template, step.variables
        definition = integration.definition
        try:
            rendered = _render(integration, template, variables, installation, bearer)
            renewed = False
            while True:
                attempts += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded(
                        "the send's deadline passed", metadata={"integration": integration.id}
                    )
                try:
                    response = await self._outbound.send(
                        rendered,
                        timeout=min(remaining, self._provider_timeout_s),
                        integration=integration.id,
                    )
                except ConnectFailed as exc:
                    # No connection, so nothing sent: try again after a growing pause.
                    delay = min(0.1 * 2 ** (attempts - 1), 2.0)
                    if self._may_retry(attempts, delay, deadline):
                        await asyncio.sleep(delay)
                        continue
                    raise from_outbound_error(exc, integration=integration.id) from None
                except OutboundError as exc:
                    raise from_outbound_error(
                        exc, integration=integration.id, deadline=deadline
                    ) from None
                if response.status == 401 and bearer and not renewed and self._auth:
                    # A token the provider no longer takes: renew it once and try again.
                    fresh = await self._auth.after_unauthorized(installation, definition, bearer)
                    if fresh:
                        renewed, bearer = True, fresh
                        rendered = _render(integration, template, variables, installation, bearer)
                        continue
                if response.status in (429, 503):
                    # The provider said when to come back: wait if another attempt fits.
                    delay_s = retry_after(response)
                    if delay_s is not None and self._may_retry(attempts, delay_s, deadline):
                        await asyncio.sleep(delay_s)
                        continue
                outcome = self._outcome(
                    response, template, message, installation, integration, attempts, bearer
                )
                return outcome, bearer
        except GatewayError as error:
            raise _Attempted(error, attempts) from None

    def _may_retry(self, attempts: int, delay_s: float, deadline: float) -> bool:
        """Whether one more attempt may be made after waiting ``delay_s``."""
        return attempts < self._max_attempts and time.monotonic() + delay_s < deadline

    async def _bearer(self, installation: InstallationRecord, definition: Definition) -> str | None:
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
        message: MessageRecord,
        installation: InstallationRecord,
        integration: LoadedIntegration,
        attempts: int,
        bearer: str | None,
    ) -> SendOutcome:
        """What the provider's answer makes of the send, or raise the error it is."""
        judged = judge_send_answer(
            template,
            response,
            integration=integration.id,
            secrets=lambda: self._secrets(installation, integration.definition, bearer),
        )
        if isinstance(judged, GatewayError):
            raise judged
        return SendOutcome(
            message_id=message.id,
            provider_message_id=judged.provider_message_id,
            provider_status=response.status,
            attempts=attempts,
            installation_id=installation.id,
            integration_id=integration.id,
        )

    def _secrets(
        self, installation: InstallationRecord, definition: Definition, bearer: str | None
    ) -> SecretMask:
        """What masks a provider's answer before it is kept or returned: the installation's
        secrets, the token this call carried and the OAuth2 tokens known for the installation
        (docs/format.md, "Authentication")."""
        properties = self._installations.property_values(installation)
        known = self._auth.oauth.known_tokens(installation.id) if self._auth else ()
        return installation_secrets(definition, properties, tokens=(bearer, *known))

    async def _record_failure(
        self,
        message: MessageRecord,
        error: GatewayError,
        attempts: int,
        sent: Sequence[SendOutcome] = (),
    ) -> None:
        # A failure that sent nothing releases the key (the message stays failed) so that the
        # caller's retry sends again; any other is stored as the key's reply. A send whose
        # earlier requests were sent keeps their provider ids (docs/format.md, "Several
        # requests per send").
        releasable = nothing_sent(error) and not sent
        try:
            await self._store.update_message(
                message.id,
                state=MessageState.FAILED,
                provider_status=getattr(error, "provider_status", None) or None,
                attempts=attempts,
                error=error.message[:500],
                reply_json=(
                    _error_json(error) if message.idempotency_key and not releasable else None
                ),
                provider_message_id=sent[0].provider_message_id if sent else UNSET,
                provider_message_ids=_ids(sent) if sent else UNSET,
            )
        except Exception:  # the send's own error matters more to the caller
            logger.exception("could not record a failed send", extra={"message": message.id})


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


class _Attempted(Exception):
    """A request of the send failed with ``error`` after ``attempts`` attempts."""

    def __init__(self, error: GatewayError, attempts: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts


def _chosen(integration: LoadedIntegration, installation: InstallationRecord) -> LoadedIntegration:
    """The integration as this installation's choices make it (docs/format.md, "Variants"): the
    definition of each combination was built at load, so this is a lookup. Choices are never
    secret, so their stored values are plain."""
    definition = integration.definition.choose(installation.properties)
    if definition is integration.definition:
        return integration
    return replace(integration, definition=definition)


def _template(request: SendRequest, integration: LoadedIntegration) -> RequestTemplate:
    """The definition's request for this kind of send."""
    definition = integration.definition
    template = definition.send_message if request.kind is MessageKind.SMS else definition.send_file
    if template is None:
        raise FailedPrecondition(
            f"the integration {integration.id!r} cannot send files",
            reason="SEND_FILE_UNSUPPORTED",
            metadata={"integration": integration.id},
        )
    return template


def _new_message(
    request: SendRequest,
    installation: InstallationRecord,
    integration: LoadedIntegration,
    fingerprint: str | None,
) -> MessageRecord:
    """The message as recorded before the provider is called."""
    now = datetime.now(UTC)
    return MessageRecord(
        id=str(uuid.uuid4()),
        org_id=request.org_id,
        installation_id=installation.id,
        integration_id=integration.id,
        kind=request.kind,
        from_number=request.from_number,
        to_number=request.to,
        text=request.text,
        media_url=request.media_url or None,
        state=MessageState.PENDING,
        provider_message_id=None,
        provider_status=None,
        attempts=0,
        error=None,
        metadata=dict(request.metadata),
        idempotency_key=request.idempotency_key or None,
        request_fingerprint=fingerprint,
        reply_json=None,
        created_at=now,
        updated_at=now,
    )


def _render(
    integration: LoadedIntegration,
    template: RequestTemplate,
    variables: Mapping[str, Value],
    installation: InstallationRecord,
    bearer: str | None,
) -> RenderedRequest:
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


class _Replay(Exception):
    """Carries a stored reply out of the claim (not an error: the caller gets the reply)."""

    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__("replay")
        self.outcome = outcome


def _key_reused() -> InvalidRequest:
    return InvalidRequest(
        "this idempotency key was used for a different request",
        reason="IDEMPOTENCY_KEY_REUSED",
        violations=[("idempotency_key", "already used with other parameters")],
    )


def _validate(request: SendRequest) -> None:
    violations = []
    if not request.org_id.strip():
        violations.append(("org_id", "required"))
    if not request.from_number.strip():
        violations.append(("from", "required"))
    if not request.to.strip():
        violations.append(("to", "required"))
    if request.kind is MessageKind.SMS and not request.text:
        violations.append(("text", "required"))
    if request.kind is MessageKind.MMS:
        if not request.media_url:
            violations.append(("media_url", "required"))
        elif not _is_http_url(request.media_url):
            violations.append(("media_url", "must be an http(s) URL"))
    if len(request.media_urls) >= MAX_MEDIA_URLS:
        violations.append(("media_urls", f"at most {MAX_MEDIA_URLS - 1} (with media_url)"))
    else:
        violations.extend(
            (f"media_urls[{i}]", "must be an http(s) URL")
            for i, url in enumerate(request.media_urls)
            if not _is_http_url(url)
        )
    if len(request.idempotency_key) > 256:
        violations.append(("idempotency_key", "at most 256 characters"))
    if violations:
        raise InvalidRequest("the send request is not valid", violations=violations)


#: The files one SendFile may carry, media_url included (docs/format.md, "Several requests per
#: send"; Twilio, for one, takes up to 10 MediaUrl).
MAX_MEDIA_URLS = 10


def _is_http_url(url: str) -> bool:
    return url.lower().startswith(("https://", "http://"))


def send_variables(request: SendRequest, message_id: str, webhook_url: str) -> dict[str, Value]:
    """The variables a send's requests are rendered with, besides the installation's property
    values (docs/format.md, "Placeholders"); ``msgbridge test`` renders a case's send with them."""
    sms = request.kind is MessageKind.SMS
    variables: dict[str, Value] = {
        "from": request.from_number,
        "to": request.to,
        "content": request.text if sms else request.media_url,
        "text": None if sms else (request.text or None),
        "extension": request.extension or None,
        "domain": request.domain or None,
        "orgid": request.org_id,
        "webhook_url": webhook_url,
        "gateway_id": message_id,
        "media_type": request.media_type or None,
        "filename": request.filename or None,
    }
    if not sms:  # (ext) every file's URL, a list ("Several requests per send")
        variables["media_urls"] = (request.media_url, *request.media_urls)
    return variables
