"""OAuth2, JWT and (ext) Token auth for installations: where tokens are kept, and the token a
send carries.

Tokens are sealed with the :class:`SecretBox` and kept as installation values in the store (so a
refresh never races with an operator's update of the installation); the authorization state
(authorized / expired / error) is kept beside them and shown on the installation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ..engine import Definition, JwtAuth, TokenAuth, Value
from ..oauth import (
    ConsumedState,
    JwtTokens,
    OAuthTokens,
    PendingAuthorization,
    RequestTokens,
    TokenSet,
)
from ..security.secrets import SecretBox
from ..store import InstallationRecord, Store
from ._catalog import IntegrationCatalog
from ._installations import InstallationDirectory

__all__ = [
    "REQUEST_TOKEN_KEYS",
    "AuthorizationStatus",
    "InstallationAuth",
    "StoreStateStore",
    "StoreTokenVault",
]

_TOKENS = "oauth_tokens"
_STATE = "oauth_state"


#: (ext) The installation values of a Token auth's token (docs/format.md, "Tokens from a
#: request"), apart from OAuth2's: a definition that changes its auth never reuses the other's.
REQUEST_TOKEN_KEYS = ("request_token", "request_token_state", "request-token-renewal")


class StoreTokenVault:
    """The :class:`server.oauth.TokenVault` of the service: sealed tokens in the store. ``keys``
    name the installation values of the tokens and the state, and the renewal lock: OAuth2's by
    default, :data:`REQUEST_TOKEN_KEYS` for a Token auth's."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        keys: tuple[str, str, str] = (_TOKENS, _STATE, "oauth-renewal"),
    ) -> None:
        self._store = store
        self._box = box
        self._tokens, self._state, self._lock = keys

    async def load(self, installation_id: str) -> TokenSet | None:
        sealed = await self._store.get_installation_value(installation_id, self._tokens)
        if sealed is None:
            return None
        return TokenSet(**json.loads(self._box.decrypt(sealed)))

    async def save(self, installation_id: str, tokens: TokenSet) -> None:
        sealed = self._box.encrypt(json.dumps(asdict(tokens)))
        await self._store.put_installation_value(installation_id, self._tokens, sealed)

    async def mark(self, installation_id: str, state: str, error: str | None) -> None:
        value = json.dumps({"state": state, "error": error})
        await self._store.put_installation_value(installation_id, self._state, value)

    def renewal(self, installation_id: str) -> AbstractAsyncContextManager[None]:
        return self._store.exclusive(f"{self._lock}:{installation_id}")


class StoreStateStore:
    """The :class:`server.oauth.StateStore` of the service: pending authorizations in the store,
    sealed (they hold the PKCE verifier), so that the provider's redirect may reach any replica."""

    def __init__(self, store: Store, box: SecretBox) -> None:
        self._store = store
        self._box = box

    async def save(self, key: str, pending: PendingAuthorization, *, now: float) -> None:
        sealed = self._box.encrypt(json.dumps(asdict(pending)))
        expires = datetime.fromtimestamp(pending.expires_at, UTC)
        await self._store.save_authorization_state(key, sealed, expires)

    async def consume(self, key: str, *, now: float) -> ConsumedState | None:
        found = await self._store.consume_authorization_state(key)
        if found is None:
            return None
        sealed, first_use = found
        pending = PendingAuthorization(**json.loads(self._box.decrypt(sealed)))
        return ConsumedState(pending=pending, first_use=first_use)


class AuthorizationStatus:
    """Reads an installation's authorization state for replies."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def of(self, record: InstallationRecord, definition: Definition) -> tuple[str, str]:
        """(state, error): state one of not_required, unauthorized, authorized, expired, error."""
        if definition.oauth2 is None:
            return "not_required", ""
        raw = await self._store.get_installation_value(record.id, _STATE)
        if raw is None:
            return "unauthorized", ""
        data: dict[str, Any] = json.loads(raw)
        return str(data.get("state") or "unauthorized"), str(data.get("error") or "")


class InstallationAuth:
    """The token a provider call carries, for definitions whose auth needs one: an OAuth2 access
    token, a signed JWT, or (ext) a Token auth's token (``tokens``; none: such a definition's
    calls carry no token)."""

    def __init__(
        self,
        *,
        oauth: OAuthTokens,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        redirect_uri: str,
        tokens: RequestTokens | None = None,
    ) -> None:
        self._oauth = oauth
        self._tokens = tokens
        self._jwt = JwtTokens()
        self._catalog = catalog
        self._installations = installations
        self._redirect_uri = redirect_uri

    @property
    def oauth(self) -> OAuthTokens:
        """The OAuth2 token client (its in-memory tokens mask a provider's answers)."""
        return self._oauth

    @property
    def redirect_uri(self) -> str:
        """The sidecar's OAuth2 callback URL, sent to the provider as ``redirect_uri``."""
        return self._redirect_uri

    async def bearer_token(
        self, installation: InstallationRecord, definition: Definition
    ) -> str | None:
        properties: Mapping[str, Value] = self._installations.property_values(installation)
        if definition.oauth2 is not None:
            return await self._oauth.bearer_token(installation.id, definition, properties)
        if isinstance(definition.auth, JwtAuth):
            return self._jwt.bearer_token(definition.auth, properties, now=time.time())
        if isinstance(definition.auth, TokenAuth) and self._tokens is not None:
            return await self._tokens.token(installation.id, definition, properties)
        return None

    async def after_unauthorized(
        self, installation: InstallationRecord, definition: Definition, rejected: str
    ) -> str | None:
        """A renewed OAuth2 or (ext) Token auth token after a 401, or None when renewing cannot
        help."""
        properties = self._installations.property_values(installation)
        if isinstance(definition.auth, TokenAuth) and self._tokens is not None:
            return await self._tokens.after_unauthorized(
                installation.id, definition, properties, rejected=rejected
            )
        if definition.oauth2 is None:
            return None
        return await self._oauth.after_unauthorized(
            installation.id, definition, properties, rejected_token=rejected
        )

    def known_tokens(self, installation_id: str) -> tuple[str, ...]:
        """The tokens last seen for the installation (OAuth2's, a Token auth's), to mask them in
        a provider's answer (docs/format.md, "Authentication")."""
        known = self._oauth.known_tokens(installation_id)
        if self._tokens is not None:
            known += self._tokens.known_tokens(installation_id)
        return known

    async def resolve(self, installation_id: str) -> tuple[Definition, Mapping[str, Value]]:
        record = await self._installations.get(installation_id)
        definition = (await self._catalog.get(record.integration_id)).definition
        return definition, self._installations.property_values(record)

    async def begin(self, installation: InstallationRecord) -> str:
        definition = (await self._catalog.get(installation.integration_id)).definition
        url, _ = await self._oauth.begin_authorization(
            installation.id,
            definition,
            self._installations.property_values(installation),
            self._redirect_uri,
        )
        return url

    async def complete(self, state: str, code: str | None, error: str | None) -> str:
        return await self._oauth.complete_authorization(state, code, self.resolve, error=error)
