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
import email.utils
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime

from ...engine import (
    Definition,
    EngineError,
    RenderedRequest,
    RenderError,
    RequestTemplate,
    map_response,
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
    ProviderError,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderUnavailable,
    Unavailable,
)
from ...oauth import installation_secrets
from ...outbound import (
    ConnectFailed,
    InvalidTarget,
    OutboundClient,
    OutboundError,
    OutboundTimeout,
    PolicyRefused,
    ProviderResponse,
)
from ...security.secrets import SecretMask
from ...store import InstallationRecord, MessageKind, MessageRecord, MessageState, Store
from .._catalog import IntegrationCatalog, LoadedIntegration
from .._installations import InstallationDirectory
from .._numbers import normalize_number
from .._provider_credentials import InstallationAuth

__all__ = ["SendOutcome", "SendPath", "SendRequest"]

logger = logging.getLogger(__name__)

_EXCERPT = 300


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRequest:
    """A SendMessage or SendFile call, as the service hands it over."""

    kind: MessageKind
    org_id: str
    from_number: str
    to: str
    text: str = ""
    media_url: str = ""
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
        values["kind"] = str(self.kind)
        values["metadata"] = dict(sorted(self.metadata.items()))
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class SendOutcome:
    message_id: str
    provider_message_id: str | None
    provider_status: int
    attempts: int
    installation_id: str
    integration_id: str
    replayed: bool = False

    def to_json(self) -> str:
        return json.dumps({"ok": {f.name: getattr(self, f.name) for f in fields(self)}})


def _error_json(error: GatewayError) -> str:
    return json.dumps(
        {
            "error": {
                "class": type(error).__name__,
                "message": error.message,
                "reason": error.reason,
                "metadata": error.metadata,
                "retry_after_s": error.retry_after_s,
            }
        }
    )


def _stored_reply(reply_json: str) -> SendOutcome | GatewayError:
    data = json.loads(reply_json)
    if "ok" in data:
        return SendOutcome(**{**data["ok"], "replayed": True})
    err = data["error"]
    cls = _ERROR_CLASSES.get(err["class"], FailedPrecondition)
    error = GatewayError.__new__(cls)
    GatewayError.__init__(
        error,
        err["message"],
        reason=err["reason"],
        metadata=err["metadata"],
        retry_after_s=err["retry_after_s"],
    )
    return error


_ERROR_CLASSES: dict[str, type[GatewayError]] = {
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
        # Calls with one idempotency key in this process: the first one's fingerprint and result.
        # Called with the recorded message once the provider accepted it (receipts held for it
        # are completed then: docs/format.md, "Receipts").
        self._on_sent = on_sent
        self._inflight: dict[tuple[str, str], tuple[str, asyncio.Future[SendOutcome]]] = {}
        # A claimed message not answered within this is taken to belong to a process that died.
        self._stale_after_s = 2 * provider_timeout_s * max_attempts + 60

    async def send(self, request: SendRequest, *, deadline: float) -> SendOutcome:
        """Send, or return the stored outcome of the same idempotency key.

        ``deadline`` is a ``time.monotonic()`` instant; past it the send fails with
        DEADLINE_EXCEEDED (the message may still have been sent if the provider was called).
        """
        _validate(request)
        key = (request.org_id, request.idempotency_key) if request.idempotency_key else None
        if key is None:
            return await self._send_new(request, deadline)
        return await self._send_once(request, key, deadline)

    async def _send_once(
        self, request: SendRequest, key: tuple[str, str], deadline: float
    ) -> SendOutcome:
        fingerprint = request.fingerprint()
        running = self._inflight.get(key)
        if running is not None:
            if running[0] != fingerprint:
                raise _key_reused()
            return replace(await asyncio.shield(running[1]), replayed=True)
        future: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (fingerprint, future)
        try:
            outcome = await self._send_new(request, deadline)
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

    async def _send_new(self, request: SendRequest, deadline: float) -> SendOutcome:
        installation, integration = await self._resolve(request)
        definition = integration.definition
        template = (
            definition.send_message if request.kind is MessageKind.SMS else definition.send_file
        )
        if template is None:
            raise FailedPrecondition(
                f"the integration {integration.id!r} cannot send files",
                reason="SEND_FILE_UNSUPPORTED",
                metadata={"integration": integration.id},
            )
        now = datetime.now(UTC)
        fingerprint = request.fingerprint() if request.idempotency_key else None
        record = MessageRecord(
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
        stored, created = await self._store.claim_message(record)
        if not created:
            stored = self._resumable(stored, record)
        return await self._call_provider(
            stored, installation, integration, template, request, deadline
        )

    async def _bearer(self, installation: InstallationRecord, definition: Definition) -> str | None:
        if self._auth is None:
            return None
        try:
            return await self._auth.bearer_token(installation, definition)
        except PolicyRefused as exc:
            raise PermissionDenied(
                str(exc), reason="OUTBOUND_POLICY", metadata={"integration": definition.id}
            ) from None

    def _resumable(self, stored: MessageRecord, record: MessageRecord) -> MessageRecord:
        """The message to send again for a repeated key, or raise what the repeat gets instead."""
        if stored.request_fingerprint != record.request_fingerprint:
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
        return installation, await self._catalog.get(installation.integration_id)

    async def _call_provider(
        self,
        message: MessageRecord,
        installation: InstallationRecord,
        integration: LoadedIntegration,
        template: RequestTemplate,
        request: SendRequest,
        deadline: float,
    ) -> SendOutcome:
        variables = self._installations.property_values(installation) | _variables(
            request, message.id, self._installations.webhook_url(installation)
        )
        attempts = 0
        definition = integration.definition
        try:
            bearer = await self._bearer(installation, definition)
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
                        rendered, timeout=min(remaining, self._provider_timeout_s)
                    )
                except ConnectFailed as exc:
                    delay = min(0.1 * 2 ** (attempts - 1), 2.0)
                    if attempts < self._max_attempts and time.monotonic() + delay < deadline:
                        await asyncio.sleep(delay)
                        continue
                    raise ProviderUnavailable(
                        f"the provider could not be reached: {exc}",
                        integration=integration.id,
                        reason="PROVIDER_UNREACHABLE",
                    ) from None
                except OutboundTimeout:
                    if time.monotonic() >= deadline - 0.001:
                        raise DeadlineExceeded(
                            "the send's deadline passed while the provider was called",
                            metadata={"integration": integration.id},
                        ) from None
                    raise ProviderUnavailable(
                        "the provider did not answer in time",
                        integration=integration.id,
                        reason="PROVIDER_TIMEOUT",
                    ) from None
                except InvalidTarget as exc:
                    raise FailedPrecondition(
                        f"the provider URL cannot be used: {exc}",
                        reason="INVALID_PROVIDER_URL",
                        metadata={"integration": integration.id},
                    ) from None
                except PolicyRefused as exc:
                    raise PermissionDenied(
                        str(exc),
                        reason="OUTBOUND_POLICY",
                        metadata={"integration": integration.id},
                    ) from None
                except OutboundError as exc:
                    raise ProviderUnavailable(
                        f"the provider call failed: {exc}", integration=integration.id
                    ) from None
                if response.status == 401 and bearer and not renewed and self._auth:
                    # A token the provider no longer takes: renew it once and try again.
                    fresh = await self._auth.after_unauthorized(installation, definition, bearer)
                    if fresh:
                        renewed, bearer = True, fresh
                        rendered = _render(integration, template, variables, installation, bearer)
                        continue
                retry_after = _retry_after(response)
                if (
                    response.status in (429, 503)
                    and retry_after is not None
                    and attempts < self._max_attempts
                    and time.monotonic() + retry_after < deadline
                ):
                    await asyncio.sleep(retry_after)
                    continue
                outcome = self._outcome(
                    response, template, message, installation, integration, attempts, bearer
                )
                break
        except GatewayError as error:
            await self._record_failure(message, error, attempts)
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
                )
            )
            raise
        sent = await self._store.update_message(
            message.id,
            state=MessageState.SENT,
            provider_message_id=outcome.provider_message_id,
            provider_status=outcome.provider_status,
            attempts=attempts,
            reply_json=outcome.to_json() if message.idempotency_key else None,
        )
        if self._on_sent is not None and sent.provider_message_id:
            await self._on_sent(sent)
        return outcome

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
        status = response.status
        if not 200 <= status < 300:
            secrets = self._secrets(installation, integration.definition, bearer)
            raise _provider_error(response, integration.id, secrets)
        try:
            mapped = map_response(
                template.response_map, response.body, response.headers.get("content-type")
            )
        except EngineError:
            mapped = None
        if mapped is not None and not mapped.accepted:
            secrets = self._secrets(installation, integration.definition, bearer)
            said = f": {secrets.excerpt(mapped.error, _EXCERPT)}" if mapped.error else ""
            raise ProviderRefused(
                "the provider refused the message" + said,
                integration=integration.id,
                provider_status=status,
                excerpt=_excerpt(response, secrets),
            )
        return SendOutcome(
            message_id=message.id,
            provider_message_id=mapped.message_id if mapped else None,
            provider_status=status,
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
        self, message: MessageRecord, error: GatewayError, attempts: int
    ) -> None:
        # Nothing was sent when the provider could not be reached or answered 429/5xx: the key is
        # released (the message stays failed) so that the caller's retry sends again.
        releasable = isinstance(error, ProviderUnavailable | ProviderRateLimited) and (
            error.reason != "PROVIDER_TIMEOUT"
        )
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
            )
        except Exception:  # the send's own error matters more to the caller
            logger.exception("could not record a failed send", extra={"message": message.id})


def _render(
    integration: LoadedIntegration,
    template: RequestTemplate,
    variables: Mapping[str, str | None],
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
        elif not request.media_url.lower().startswith(("https://", "http://")):
            violations.append(("media_url", "must be an http(s) URL"))
    if len(request.idempotency_key) > 256:
        violations.append(("idempotency_key", "at most 256 characters"))
    if violations:
        raise InvalidRequest("the send request is not valid", violations=violations)


def _variables(request: SendRequest, message_id: str, webhook_url: str) -> dict[str, str | None]:
    sms = request.kind is MessageKind.SMS
    return {
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


def _excerpt(response: ProviderResponse, secrets: SecretMask) -> str:
    return secrets.excerpt(response.body, _EXCERPT, truncated=response.truncated)


def _retry_after(response: ProviderResponse) -> float | None:
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


def _provider_error(
    response: ProviderResponse, integration: str, secrets: SecretMask
) -> ProviderError:
    status = response.status
    excerpt = _excerpt(response, secrets)
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
            retry_after_s=_retry_after(response),
        )
    if status >= 500:
        return ProviderUnavailable(
            f"the provider failed with HTTP {status}{said}",
            integration=integration,
            provider_status=status,
            excerpt=excerpt,
            retry_after_s=_retry_after(response),
        )
    return ProviderRejected(
        f"the provider rejected the message with HTTP {status}{said}",
        integration=integration,
        provider_status=status,
        excerpt=excerpt,
    )
