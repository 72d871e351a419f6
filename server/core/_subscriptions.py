"""Subscribe: registering an installation's webhook URL with the provider
(docs/format.md, "Subscribe and Unsubscribe").

When an installation whose definition has a ``Subscribe`` request is enabled, or a value its
requests depend on changes (docs/format.md, "When Subscribe runs again"), its requests are made in
order with ``$webhook_url$``. Success marks the installation ``subscribed``; a failure marks it
``failed`` with the error and is retried with exponential backoff, and can be retried at once
(``RetrySubscription``). Disabling makes the ``Unsubscribe`` requests, best effort.

A request's ``response_map`` is applied to its answer as for a send: a literal that does not match
fails the step (``$error$`` says why), and every other capture (``$sid$``) becomes a variable of
the later requests of the same list — how a number's id is looked up before the number is updated.
A capture the answer does not have fails the step: the next request could not be built right.
(ext) A request's ``find`` searches its answer's lists and captures what it finds, and its
``only_if`` skips it unless a variable has (or has no) value (docs/format.md, "Look up before
create"). Every capture is kept, sealed, for the next run and for ``Unsubscribe`` (``Kept``;
docs/format.md, "Values Subscribe keeps"). Which step comes next, with which variables, and what
its answer captures is decided by :mod:`server.core._subscribe_steps`, which ``msgbridge test``
runs offline too; this module makes the calls and keeps the state.

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
import hashlib
import json
import logging
from datetime import datetime

from ..engine import (
    Definition,
    RequestTemplate,
    Value,
    auth_variables,
    template_variables,
    thaw,
)
from ..errors import GatewayError
from ..metrics import NO_METRICS, Metrics
from ..oauth import installation_secrets
from ..outbound import OutboundClient, OutboundError
from ..security.secrets import SecretMask
from ..store import ExchangeKind, InstallationRecord, Store
from . import _subscribe_steps as steps
from ._catalog import IntegrationCatalog
from ._exchange_log import ExchangeLog, send_logged
from ._installations import InstallationDirectory
from ._provider_credentials import InstallationAuth
from ._provider_failures import from_outbound_error

__all__ = ["SubscriptionKeeper"]

logger = logging.getLogger(__name__)

#: How many installations :meth:`SubscriptionKeeper.start` reads at once.
_START_PAGE = 500


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
        exchanges: ExchangeLog | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._exchanges = exchanges
        self._metrics = metrics
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
        """Resume the subscriptions left pending or failed by a previous run, and make again those
        whose values changed while the service was down (its public URL, the definition).

        The installations are read a page at a time (the store's keyset pages), so that what this
        holds at once does not grow with their number: 10,000 read in one list (100,000 numbers)
        held 34 MB at once."""
        after: tuple[datetime, str] | None = None
        while True:
            page = await self._store.list_installations(after=after, limit=_START_PAGE)
            for record in page:
                if not record.enabled:
                    continue
                if record.subscription_state in ("pending", "failed"):
                    self.schedule(record)
                elif record.subscription_state == "subscribed":
                    kept = await self._kept(record.id)
                    if kept.fingerprint is not None:
                        await self._again_if_changed(record, kept.fingerprint)
            if len(page) < _START_PAGE:
                return
            after = (page[-1].created_at, page[-1].id)

    async def after_update(self, before: InstallationRecord, after: InstallationRecord) -> None:
        """An admin changed the installation: Subscribe runs again when a value its requests
        depend on changed (docs/format.md, "When Subscribe runs again"), and not otherwise."""
        if not after.enabled:
            return
        reference = None
        if before.subscription_state == "subscribed":
            reference = (await self._kept(before.id)).fingerprint
        if reference is None:  # what the running attempts use, or a subscription kept by an
            reference = await self._depends_on(before)  # older version that recorded nothing
        await self._again_if_changed(after, reference)

    async def _again_if_changed(self, record: InstallationRecord, reference: str | None) -> None:
        integration = await self._catalog.get(record.integration_id)
        if not integration.definition.choose(record.properties).subscribe:
            if record.subscription_state != "not_required":
                await self._store.set_subscription(record.id, state="not_required", error=None)
            return
        if await self._depends_on(record) == reference:
            return
        await self._store.set_subscription(record.id, state="pending", error=None)
        logger.info(
            "subscribing again: a value it depends on changed", extra={"installation": record.id}
        )
        self.schedule(record)

    async def _depends_on(self, record: InstallationRecord) -> str | None:
        """A digest of every value the installation's Subscribe requests depend on: the requests
        themselves (its variant, the definition's version), the properties they and the auth
        render, the webhook URL, and the numbers when a request is made per number. None when
        the definition has no Subscribe. Kept only sealed: it digests secret values."""
        integration = await self._catalog.get(record.integration_id)
        definition = integration.definition.choose(record.properties)
        requests = definition.subscribe
        if not requests:
            return None
        used = auth_variables(definition.auth).union(*(template_variables(t) for t in requests))
        properties = self._installations.property_values(record)
        per_number = "number" in used
        # The file as written (a variant's, merged): stable across versions of this code, unlike
        # the loaded model.
        source = thaw(definition.source)
        depends = {
            "requests": source.get("Subscribe"),
            "auth": source.get("auth"),
            "properties": {name: properties.get(name) for name in sorted(used & properties.keys())},
            "webhook_url": self._installations.webhook_url(record),
            "orgid": record.org_id,
            "numbers": sorted(n.number for n in record.numbers) if per_number else None,
        }
        return hashlib.sha256(json.dumps(depends, sort_keys=True).encode()).hexdigest()

    async def _kept(self, installation_id: str) -> steps.Kept:
        text = await self._installations.subscription_values(installation_id)
        return steps.Kept.from_json(text)

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
                self._metrics.subscribe(record.integration_id, "not_required")
                return True
            kept = await self._kept(record.id)
            before = kept.to_json()
            try:
                await self._make(record, requests, kept)
            except (SubscriptionFailed, asyncio.CancelledError) as exc:
                # What the run created before it failed or was replaced by a newer one (its
                # captures) is kept all the same, for the next run (docs/format.md, "Values
                # Subscribe keeps").
                if kept.to_json() != before:
                    await self._installations.keep_subscription_values(record.id, kept.to_json())
                if isinstance(exc, asyncio.CancelledError):
                    raise
                logger.warning(
                    "subscribe failed",
                    extra={
                        "installation": record.id,
                        "integration": record.integration_id,
                        "reason": exc.reason,
                    },
                )
                await self._store.set_subscription(record.id, state="failed", error=str(exc))
                self._metrics.subscribe(record.integration_id, "failed")
                return False
            kept.fingerprint = await self._depends_on(record)
            await self._installations.keep_subscription_values(record.id, kept.to_json())
            await self._store.set_subscription(record.id, state="subscribed", error=None)
            self._metrics.subscribe(record.integration_id, "subscribed")
            logger.info("subscribed", extra={"installation": record.id})
            return True

    async def unsubscribe(self, record: InstallationRecord) -> None:
        """Make the definition's Unsubscribe requests; failures are logged, not raised."""
        integration = await self._catalog.get(record.integration_id)
        definition = integration.definition.choose(record.properties)
        if not definition.unsubscribe:
            return
        kept = await self._kept(record.id)
        try:
            await self._make(
                record,
                definition.unsubscribe,
                kept,
                numbered=steps.numbered_after(definition.subscribe),
            )
        except SubscriptionFailed as exc:
            logger.warning(
                "unsubscribe failed", extra={"installation": record.id, "reason": exc.reason}
            )
            return
        # What was subscribed is gone: nothing is kept for a later run (docs/format.md,
        # "Values Subscribe keeps").
        await self._installations.keep_subscription_values(record.id, steps.Kept().to_json())

    async def _make(
        self,
        record: InstallationRecord,
        requests: tuple[RequestTemplate, ...],
        kept: steps.Kept,
        numbered: frozenset[str] = steps.NUMBER_ONLY,
    ) -> None:
        """Make ``requests`` in order, starting from the values ``kept`` holds and recording in
        it what they capture. ``numbered``: the variables whose value depends on the number
        (for Unsubscribe, also what Subscribe captured per number). Which step comes next, with
        which variables, is ``steps.next_step``'s to say (shared with ``msgbridge test``)."""
        definition = (await self._catalog.get(record.integration_id)).definition
        definition = definition.choose(record.properties)  # auth may differ per variant
        properties = self._installations.property_values(record)
        secrets = installation_secrets(definition, properties)
        bearer = await self._bearer(record, definition, secrets)
        known = self._auth.known_tokens(record.id) if self._auth else ()
        secrets = secrets.with_values((bearer, *known))
        run = steps.SubscribeRun(
            requests=requests,
            gateway={
                **properties,
                "webhook_url": self._installations.webhook_url(record),
                "orgid": record.org_id,
            },
            numbers=tuple(n.number for n in record.numbers),
            numbered=numbered,
        )
        kept.retain(run.numbers)
        region = record.default_region or None
        step = steps.next_step(run, kept, None)
        while step is not None:
            kept.record(
                await self._call(record, definition, step, bearer, region, secrets), step.number
            )
            step = steps.next_step(run, kept, step)

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
        record: InstallationRecord,
        definition: Definition,
        step: steps.SubscribeStep,
        bearer: str | None,
        region: str | None,
        secrets: SecretMask,
    ) -> dict[str, Value]:
        """Make one request; its captures for the requests after it (None: a search found
        nothing)."""
        rendered = steps.render_step(
            definition, step, bearer=bearer, region=region, secrets=secrets
        )
        if isinstance(rendered, steps.StepFailure):
            raise SubscriptionFailed(rendered.text)
        try:
            response = await send_logged(
                self._outbound,
                rendered,
                timeout=self._timeout_s,
                integration=definition.id,
                log=self._exchanges,
                mask=lambda: secrets,
                installation=record,
                kind=ExchangeKind.SUBSCRIBE,
            )
        except OutboundError as exc:
            error = from_outbound_error(exc, integration=definition.id)
            raise SubscriptionFailed(f"{step.where} failed: {secrets(str(exc))}", error) from None
        verdict = steps.judge_step_answer(
            step, response, integration=definition.id, secrets=secrets
        )
        if isinstance(verdict, steps.StepFailure):
            raise SubscriptionFailed(verdict.text, verdict.error)
        return verdict
