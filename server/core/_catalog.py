"""Integrations: registering definitions and keeping the loaded ones at hand.

Loading a definition (schema validation and semantic checks) costs far more than a send, so each
stored version is loaded once and kept; the send path asks for an integration's latest version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from .._cpu import off_loop
from ..engine import (
    Auth,
    BasicAuth,
    BearerAuth,
    Definition,
    DefinitionError,
    EventType,
    HeaderAuth,
    JwtAuth,
    TokenAuth,
    compile_requests,
    load_definition,
)
from ..engine import Problem as DefinitionProblem
from ..errors import InvalidDefinition, NotFound
from ..store import IntegrationRecord, Store

__all__ = [
    "Capabilities",
    "IntegrationCatalog",
    "LoadedIntegration",
    "capabilities_of",
    "definition_refused",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    send_message: bool
    send_file: bool
    inbound_sms: bool
    inbound_mms: bool
    delivery_receipts: bool
    subscribe: bool
    webhook_auth: bool
    auth: str


def _auth_name(auth: Auth) -> str:
    # A match on the classes, not on their names: mypy checks that every member of the ``Auth``
    # union is named here (assert_never), so a new auth class cannot fall through unnoticed.
    match auth:
        case BasicAuth():
            return "Basic"
        case BearerAuth():
            return "Bearer"
        case HeaderAuth():
            return "Header"
        case JwtAuth():
            return "JWT"
        case TokenAuth():
            return "Token"
        case _:
            assert_never(auth)


def capabilities_of(definition: Definition) -> Capabilities:
    types = {model.event_type for model in definition.webhooks}
    if definition.oauth2 is not None:
        auth = "OAuth2"
    elif definition.auth is not None:
        auth = _auth_name(definition.auth)
    else:
        auth = ""
    return Capabilities(
        send_message=True,
        send_file=definition.send_file is not None,
        inbound_sms=EventType.MESSAGE in types,
        inbound_mms=EventType.MMS in types,
        delivery_receipts=bool(types & {EventType.MESSAGE_DELIVERED, EventType.MESSAGE_FAILED}),
        subscribe=bool(definition.subscribe),
        webhook_auth=definition.webhook_auth is not None,
        auth=auth,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedIntegration:
    """A stored integration version with its loaded definition."""

    id: str
    version: int
    definition: Definition
    definition_json: str
    created_at: datetime

    @property
    def warnings(self) -> tuple[DefinitionProblem, ...]:
        return self.definition.warnings


def _prepared(definition_json: str) -> Definition:
    """The definition loaded, its requests compiled (``compile_requests``): both on the worker
    thread of ``off_loop``, so that neither holds the event loop."""
    definition = load_definition(definition_json)
    compile_requests(definition)
    return definition


class IntegrationCatalog:
    """Registers definitions in the store and keeps each loaded version in memory."""

    def __init__(self, store: Store, *, cache_ttl_s: float = 2.0) -> None:
        self._store = store
        self._loaded: dict[tuple[str, int], LoadedIntegration] = {}
        # The latest version of each integration, re-read after ``cache_ttl_s`` (another replica
        # may have registered a newer one) and at once after a change made here.
        self._latest: dict[str, tuple[float, LoadedIntegration]] = {}
        self._cache_ttl_s = cache_ttl_s

    @staticmethod
    async def validate(definition_json: str) -> Definition:
        """Load a definition or raise :class:`InvalidDefinition` with every error as a violation.

        Off the event loop: a definition near the size limit takes a while to check."""
        try:
            return await off_loop(_prepared, definition_json)
        except DefinitionError as exc:
            raise definition_refused(exc.errors) from None

    async def register(self, definition_json: str) -> LoadedIntegration:
        definition = await self.validate(definition_json)
        # Stored as sent, so what an operator reads back is exactly what they registered.
        record = await self._store.put_integration(definition.id, definition_json)
        self._latest.pop(definition.id, None)
        logger.info(
            "integration registered",
            extra={"integration": record.id, "version": record.version},
        )
        return self._remember(record, definition)

    async def get(self, integration_id: str, version: int | None = None) -> LoadedIntegration:
        """The latest (or a given) version; :class:`NotFound` when unknown or deleted."""
        if version is None:
            cached = self._latest.get(integration_id)
            if cached is not None and time.monotonic() - cached[0] < self._cache_ttl_s:
                return cached[1]
        record = await self._store.get_integration(integration_id, version)
        if record is None:
            what = f"version {version} of " if version else ""
            raise NotFound(
                f"no {what}integration {integration_id!r}",
                reason="INTEGRATION_NOT_FOUND",
                metadata={"integration": integration_id},
            )
        loaded = await self.loaded(record)
        if version is None:
            self._latest[integration_id] = (time.monotonic(), loaded)
        return loaded

    async def loaded(self, record: IntegrationRecord) -> LoadedIntegration:
        cached = self._loaded.get((record.id, record.version))
        if cached is not None:
            return cached
        return self._remember(record, await off_loop(_prepared, record.definition_json))

    def _remember(self, record: IntegrationRecord, definition: Definition) -> LoadedIntegration:
        loaded = LoadedIntegration(
            id=record.id,
            version=record.version,
            definition=definition,
            definition_json=record.definition_json,
            created_at=record.created_at,
        )
        self._loaded[(record.id, record.version)] = loaded
        return loaded

    async def list(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[LoadedIntegration]:
        """Registered integrations by id, after the id ``after`` (the last of a previous page);
        at most ``limit`` (None: all). Only the definitions returned are read and loaded."""
        records = await self._store.list_integrations(after=after, limit=limit)
        return [await self.loaded(record) for record in records]

    async def delete(self, integration_id: str) -> bool:
        self._latest.pop(integration_id, None)
        return await self._store.delete_integration(integration_id)


def definition_refused(errors: Sequence[DefinitionProblem]) -> InvalidDefinition:
    """The error a definition with ``errors`` is refused with, every error a violation."""
    return InvalidDefinition(
        f"the definition has {len(errors)} error(s); the first: {errors[0]}"
        if errors
        else "the definition is invalid",
        violations=[(p.pointer or "/", p.message) for p in errors],
    )
