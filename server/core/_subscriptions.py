"""Subscribe: registering an installation's webhook URL with the provider
(docs/format.md, "Subscribe and Unsubscribe").

When an installation whose definition has a ``Subscribe`` request is enabled, or its properties
or numbers change, its requests are made in order with ``$webhook_url$``. Success marks the
installation ``subscribed``; a failure marks it ``failed`` with the error and is retried with
exponential backoff, and can be retried at once (``RetrySubscription``). Disabling makes the
``Unsubscribe`` requests, best effort.

A request's ``response_map`` is applied to its answer as for a send: a literal that does not match
fails the step (``$error$`` says why), and every other capture (``$sid$``) becomes a variable of
the later requests of the same list — how a number's id is looked up before the number is updated.
A capture the answer does not have fails the step: the next request could not be built right.

A failure's text (kept on the installation and returned as its subscription's ``last_error``) has
every secret of the installation masked (docs/format.md, "Authentication"): a provider's answer
may echo what it was sent. A provider's failure is classified as for a send
(:mod:`server.core._provider_failures`); its reason goes to the log.

A request is made once per assigned number when it uses ``$number$`` or a variable captured by
such a request; each number then has its own captures. Any other request is made once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from ..engine import (
    Definition,
    EngineError,
    RequestTemplate,
    Value,
    map_response,
    render_request,
    response_variables,
    template_variables,
)
from ..errors import GatewayError
from ..oauth import installation_secrets
from ..outbound import OutboundClient, OutboundError
from ..security.secrets import SecretMask
from ..store import InstallationRecord, Store
from ._catalog import IntegrationCatalog
from ._installations import InstallationDirectory
from ._provider_credentials import InstallationAuth
from ._provider_failures import EXCERPT, from_http_response, from_outbound_error, from_refusal

__all__ = ["SubscriptionKeeper"]

logger = logging.getLogger(__name__)


class SubscriptionFailed(Exception):
    """A Subscribe or Unsubscribe request failed. The text is what the installation keeps;
    ``error`` is the provider's failure as a send would report it, when there is one."""

    def __init__(self, text: str, error: GatewayError | None = None) -> None:
        super().__init__(text)
        self.error = error

    @property
    def reason(self) -> str | None:
        return self.error.reason if self.error is not None else None


class SubscriptionKeeper:
    """Keeps the installations' provider subscriptions: ``start`` resumes the unfinished ones,
    ``aclose`` stops the background attempts."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        outbound: OutboundClient,
        timeout_s: float,
        auth: InstallationAuth | None = None,
        retry_base_s: float = 5.0,
        retry_max_s: float = 600.0,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._installations = installations
        self._outbound = outbound
        self._timeout_s = timeout_s
        self._auth = auth
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Resume the subscriptions left pending or failed by a previous run."""
        for record in await self._store.list_installations():
            if record.enabled and record.subscription_state in ("pending", "failed"):
                self.schedule(record)

    async def aclose(self) -> None:
        """Cancel the background attempts and wait for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def schedule(self, record: InstallationRecord) -> None:
        """Subscribe in the background, retrying with backoff until it succeeds."""
        running = self._tasks.pop(record.id, None)
        if running is not None:
            running.cancel()
        task = asyncio.create_task(self._keep_trying(record.id), name=f"subscribe-{record.id}")
        self._tasks[record.id] = task
        task.add_done_callback(
            lambda done: (
                self._tasks.pop(record.id, None) if self._tasks.get(record.id) is done else None
            )
        )

    async def _keep_trying(self, installation_id: str) -> None:
        delay = self._retry_base_s
        while True:
            record = await self._store.get_installation(installation_id)
            if record is None or not record.enabled:
                return
            if await self._attempt(record):
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def after_authorization(self, installation_id: str) -> None:
        """An admin has just authorized the installation (OAuth2): a subscription that was
        waiting for its access token is tried again now rather than at its next backoff."""
        record = await self._store.get_installation(installation_id)
        if record is not None and record.enabled and record.subscription_state == "failed":
            self.schedule(record)

    async def subscribe_now(self, record: InstallationRecord) -> bool:
        """One attempt now; True when every request succeeded."""
        return await self._attempt(record)

    async def _attempt(self, record: InstallationRecord) -> bool:
        lock = self._locks.setdefault(record.id, asyncio.Lock())
        async with lock:
            integration = await self._catalog.get(record.integration_id)
            # (ext) the installation's variant (docs/format.md, "Variants")
            requests = integration.definition.choose(record.properties).subscribe
            if not requests:
                await self._store.set_subscription(record.id, state="not_required", error=None)
                return True
            try:
                await self._make(record, requests)
            except SubscriptionFailed as exc:
                logger.warning(
                    "subscribe failed",
                    extra={
                        "installation": record.id,
                        "integration": record.integration_id,
                        "reason": exc.reason,
                    },
                )
                await self._store.set_subscription(record.id, state="failed", error=str(exc))
                return False
            await self._store.set_subscription(record.id, state="subscribed", error=None)
            logger.info("subscribed", extra={"installation": record.id})
            return True

    async def unsubscribe(self, record: InstallationRecord) -> None:
        """Make the definition's Unsubscribe requests; failures are logged, not raised."""
        integration = await self._catalog.get(record.integration_id)
        unsubscribe = integration.definition.choose(record.properties).unsubscribe
        if not unsubscribe:
            return
        try:
            await self._make(record, unsubscribe)
        except SubscriptionFailed as exc:
            logger.warning(
                "unsubscribe failed", extra={"installation": record.id, "reason": exc.reason}
            )

    async def _make(
        self, record: InstallationRecord, requests: tuple[RequestTemplate, ...]
    ) -> None:
        definition = (await self._catalog.get(record.integration_id)).definition
        definition = definition.choose(record.properties)  # auth may differ per variant
        properties = self._installations.property_values(record)
        secrets = installation_secrets(definition, properties)
        bearer = await self._bearer(record, definition, secrets)
        known = self._auth.oauth.known_tokens(record.id) if self._auth else ()
        secrets = secrets.with_values((bearer, *known))
        shared: dict[str, Value] = {
            **properties,
            "webhook_url": self._installations.webhook_url(record),
            "orgid": record.org_id,
        }
        numbers = [n.number for n in record.numbers]
        per_number: dict[str, dict[str, Value]] = {n: {"number": n} for n in numbers}
        numbered = {"number"}  # variables whose value depends on the number
        region = record.default_region or None
        for index, template in enumerate(requests, start=1):
            where = f"request {index} ({template.pointer})"
            captured = response_variables(template)
            if template_variables(template) & numbered:
                numbered |= captured
                for number in numbers:
                    scope = per_number[number]
                    scope |= await self._call(
                        definition, template, shared | scope, bearer, where, region, secrets
                    )
            else:
                shared |= await self._call(
                    definition, template, shared, bearer, where, region, secrets
                )

    async def _bearer(
        self, record: InstallationRecord, definition: Definition, secrets: SecretMask
    ) -> str | None:
        """The OAuth2 access token or signed JWT the provider calls carry, if the auth needs one."""
        if self._auth is None:
            return None
        try:
            return await self._auth.bearer_token(record, definition)
        except (GatewayError, OutboundError) as exc:
            error = (
                exc
                if isinstance(exc, GatewayError)
                else from_outbound_error(exc, integration=definition.id)
            )
            raise SubscriptionFailed(f"no access token: {secrets(str(exc))}", error) from None

    async def _call(
        self,
        definition: Definition,
        template: RequestTemplate,
        variables: Mapping[str, Value],
        bearer: str | None,
        where: str,
        region: str | None,
        secrets: SecretMask,
    ) -> dict[str, Value]:
        """Make one request; its captures for the requests after it."""
        try:
            rendered = render_request(
                definition,
                template,
                variables,
                bearer_token=bearer,
                default_region=region,
            )
            response = await self._outbound.send(
                rendered, timeout=self._timeout_s, integration=definition.id
            )
        except EngineError as exc:
            raise SubscriptionFailed(f"{where} cannot be built: {secrets(str(exc))}") from None
        except OutboundError as exc:
            error = from_outbound_error(exc, integration=definition.id)
            raise SubscriptionFailed(f"{where} failed: {secrets(str(exc))}", error) from None
        if not 200 <= response.status < 300:
            failure = from_http_response(response, integration=definition.id, secrets=secrets)
            said = f": {failure.excerpt}" if failure.excerpt else ""
            raise SubscriptionFailed(f"{where} answered HTTP {response.status}{said}", failure)
        if template.response_map is None:
            return {}
        outcome = map_response(
            template.response_map, response.body, response.headers.get("content-type")
        )
        if not outcome.accepted:
            reason = outcome.error or outcome.reason or "the answer is not the expected one"
            refusal = from_refusal(
                response, refused=outcome.error, integration=definition.id, secrets=secrets
            )
            raise SubscriptionFailed(
                f"{where} was refused: {secrets.excerpt(reason, EXCERPT)}", refusal
            )
        missing = sorted(response_variables(template) - outcome.captures.keys())
        if missing:
            names = ", ".join(f"${name}$" for name in missing)
            raise SubscriptionFailed(f"{where}: the answer does not contain {names}")
        return {name: outcome.captures[name] for name in response_variables(template)}
