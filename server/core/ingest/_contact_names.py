"""(ext) Contact names looked up (docs/format.md, "Contact names").

An inbound message or MMS whose payload gave no sender's name (no ``contact_name`` extra field),
of a definition with ``API.LookupContact``:

    a name cached for (installation, sender) → added to the event now
    none → a lookup started in the background (one per installation and sender at a time, at
      most ``MAX_IN_FLIGHT`` at once), whose answer fills the cache for the sender's later
      messages

The webhook is never held for a lookup: it is stored and answered as it would be without one,
and a lookup that fails, times out or is refused changes nothing but the cache (a sender without
a name is asked again after ``RETRY_AFTER_S``). Each process keeps its own cache, bounded by
``MAX_ENTRIES``; a name lives ``TTL_S``. The call goes through the provider call of a send
(``ProviderAttempt.call``: the bearer token, the outbound client and its policy, the exchange
log, kept masked as kind ``contact_lookup``), with a timeout of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Final

from ...engine import (
    CONTACT_NAME_FIELD,
    ContactLookup,
    EventType,
    InboundEvent,
    Value,
    contact_name_from_answer,
)
from ...errors import GatewayError
from ...store import ExchangeKind, InstallationRecord
from .._capped_cache import CappedCache
from .._catalog import LoadedIntegration
from .._installations import InstallationDirectory
from ..send import AttemptFailed, CallTarget, ProviderAttempt, chosen

__all__ = [
    "LOOKUP_TIMEOUT_S",
    "MAX_ENTRIES",
    "MAX_IN_FLIGHT",
    "RETRY_AFTER_S",
    "TTL_S",
    "ContactNames",
]

logger = logging.getLogger(__name__)

TTL_S: Final = 24 * 3600.0  # how long a name found is used
RETRY_AFTER_S: Final = 600.0  # when a sender the lookup gave no name is asked again
LOOKUP_TIMEOUT_S: Final = 2.0  # the most one lookup call may take
MAX_ENTRIES: Final = 10_000  # names (and misses) one process keeps
MAX_IN_FLIGHT: Final = 32  # lookups under way at once; a sender past it is asked next time

_NAMED_TYPES: Final = frozenset({EventType.MESSAGE, EventType.MMS})

_Key = tuple[str, str]  # (installation id, sender's address)


class ContactNames:
    """Names inbound messages' senders from a cache filled by background lookups."""

    def __init__(
        self,
        *,
        installations: InstallationDirectory,
        attempt: ProviderAttempt,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._installations = installations
        self._attempt = attempt
        self._clock = clock
        # (installation, sender) → (until when, the name; "" for none)
        self._cache: CappedCache[_Key, tuple[float, str]] = CappedCache(MAX_ENTRIES)
        self._pending: dict[_Key, asyncio.Task[None]] = {}
        self._closed = False

    def named(
        self, event: InboundEvent, installation: InstallationRecord, integration: LoadedIntegration
    ) -> InboundEvent:
        """``event`` with its sender's cached name in its extra fields; without one, the same
        event, and a lookup started when the definition has one and nothing is known yet."""
        sender = event.from_number
        if not sender or event.type not in _NAMED_TYPES or CONTACT_NAME_FIELD in event.fields:
            return event
        definition = integration.definition
        if definition.lookup_contact is None and not definition.choosers:
            return event  # no variant can have one: what an SMS provider's message costs
        integration = chosen(integration, installation)  # its variant's lookup
        lookup = integration.definition.lookup_contact
        if lookup is None:
            return event
        key = (installation.id, sender)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            name = cached[1]
            if not name:
                return event
            return replace(
                event, fields=MappingProxyType({**event.fields, CONTACT_NAME_FIELD: name})
            )
        self._start(key, lookup, event, installation, integration)
        return event

    def _start(
        self,
        key: _Key,
        lookup: ContactLookup,
        event: InboundEvent,
        installation: InstallationRecord,
        integration: LoadedIntegration,
    ) -> None:
        if self._closed or key in self._pending or len(self._pending) >= MAX_IN_FLIGHT:
            return
        task = asyncio.create_task(
            self._look_up(key, lookup, event.to_number, installation, integration)
        )
        self._pending[key] = task
        task.add_done_callback(lambda _: self._pending.pop(key, None))

    async def _look_up(
        self,
        key: _Key,
        lookup: ContactLookup,
        to: str | None,
        installation: InstallationRecord,
        integration: LoadedIntegration,
    ) -> None:
        """One lookup: its name (or its miss) cached; never raises."""
        started = time.perf_counter()
        variables: dict[str, Value] = {
            **self._installations.property_values(installation),
            "from": key[1],
            "to": to or None,
            "webhook_url": self._installations.webhook_url(installation),
        }
        target = CallTarget(
            installation=installation,
            integration=integration,
            kind=ExchangeKind.CONTACT_LOOKUP,
            message_id=None,
        )
        name: str | None = None
        status = 0
        outcome = "failed"
        try:
            bearer = await self._attempt.bearer(installation, integration.definition)
            response, _, _ = await self._attempt.call(lookup.request, variables, target, bearer)
            status = response.status
            if 200 <= status < 300:
                content_type = response.headers.get("content-type")
                name = contact_name_from_answer(lookup, response.body, content_type)
                outcome = "named" if name else "no_name"
        except AttemptFailed as failed:
            status = _status(failed.error)
        except GatewayError as error:
            status = _status(error)
        except Exception:  # a background task: nothing above it would hear of it
            logger.exception("contact lookup failed", extra={"integration": integration.id})
        until = self._clock() + (TTL_S if name else RETRY_AFTER_S)
        self._cache.put(key, (until, name or ""))
        logger.info(
            "contact lookup ended",
            extra={
                "integration": integration.id,
                "outcome": outcome,
                "provider_status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    async def idle(self) -> None:
        """Wait for the lookups under way (tests, and :meth:`aclose`)."""
        while self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Start no more lookups; cancel those under way (their answers only fill a cache)."""
        self._closed = True
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)


def _status(error: GatewayError) -> int:
    answered = error.metadata.get("provider_status", "")
    return int(answered) if answered.isdigit() else 0
