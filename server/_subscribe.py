"""Subscribe: registering an installation's webhook URL with the provider (seed §Subscribe).

When an installation whose definition has a ``Subscribe`` request is enabled, or its properties
or numbers change, its requests are made in order (once per number where a request uses
``$number$``) with ``$webhook_url$``. Success marks the installation ``subscribed``; a failure
marks it ``failed`` with the error and is retried with exponential backoff, and can be retried at
once (``RetrySubscription``). Disabling makes the ``Unsubscribe`` requests, best effort.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ._catalog import IntegrationCatalog
from ._installations import InstallationDirectory
from .engine import EngineError, RequestTemplate, render_request, template_variables
from .outbound import OutboundClient, OutboundError
from .store import InstallationRecord, Store

__all__ = ["SubscriptionKeeper"]

logger = logging.getLogger(__name__)


class SubscriptionFailed(Exception):
    pass


class SubscriptionKeeper:
    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        outbound: OutboundClient,
        timeout_s: float,
        retry_base_s: float = 5.0,
        retry_max_s: float = 600.0,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._installations = installations
        self._outbound = outbound
        self._timeout_s = timeout_s
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Resume the subscriptions left pending or failed by a previous run."""
        for record in await self._store.list_installations():
            if record.enabled and record.subscription_state in ("pending", "failed"):
                self.schedule(record)

    async def stop(self) -> None:
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

    async def subscribe_now(self, record: InstallationRecord) -> bool:
        """One attempt now; True when every request succeeded."""
        return await self._attempt(record)

    async def _attempt(self, record: InstallationRecord) -> bool:
        lock = self._locks.setdefault(record.id, asyncio.Lock())
        async with lock:
            integration = await self._catalog.get(record.integration_id)
            requests = integration.definition.subscribe
            if not requests:
                await self._store.set_subscription(record.id, state="not_required", error=None)
                return True
            try:
                await self._make(record, requests)
            except SubscriptionFailed as exc:
                logger.warning(
                    "subscribe failed",
                    extra={"installation": record.id, "integration": record.integration_id},
                )
                await self._store.set_subscription(record.id, state="failed", error=str(exc))
                return False
            await self._store.set_subscription(record.id, state="subscribed", error=None)
            logger.info("subscribed", extra={"installation": record.id})
            return True

    async def unsubscribe(self, record: InstallationRecord) -> None:
        """Make the definition's Unsubscribe requests; failures are logged, not raised."""
        integration = await self._catalog.get(record.integration_id)
        if not integration.definition.unsubscribe:
            return
        try:
            await self._make(record, integration.definition.unsubscribe)
        except SubscriptionFailed:
            logger.warning("unsubscribe failed", extra={"installation": record.id})

    async def _make(
        self, record: InstallationRecord, requests: tuple[RequestTemplate, ...]
    ) -> None:
        definition = (await self._catalog.get(record.integration_id)).definition
        base = self._installations.property_values(record) | {
            "webhook_url": self._installations.webhook_url(record),
            "orgid": record.org_id,
        }
        for index, template in enumerate(requests, start=1):
            numbers: list[str | None] = (
                [n.number for n in record.numbers]
                if "number" in template_variables(template)
                else [None]
            )
            for number in numbers:
                variables = base | ({"number": number} if number else {})
                where = f"request {index} ({template.pointer})"
                try:
                    rendered = render_request(
                        definition, template, variables, default_region=record.default_region
                    )
                    response = await self._outbound.send(rendered, timeout=self._timeout_s)
                except EngineError as exc:
                    raise SubscriptionFailed(f"{where} cannot be built: {exc}") from None
                except OutboundError as exc:
                    raise SubscriptionFailed(f"{where} failed: {exc}") from None
                if not 200 <= response.status < 300:
                    excerpt = " ".join(response.body[:300].decode("utf-8", "replace").split())
                    raise SubscriptionFailed(
                        f"{where} answered HTTP {response.status}"
                        + (f": {excerpt}" if excerpt else "")
                    )
