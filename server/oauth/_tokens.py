"""OAuth2 for installations (docs/format.md, "OAuth2"): valid access tokens, and the
authorization-code flow that first obtains them.

:class:`OAuthTokens` answers :meth:`~OAuthTokens.bearer_token` for the send path:

- flow ``"1"`` (client credentials): a token is fetched when there is none or it is about to
  expire;
- flow ``"0"`` (authorization code): the stored token is used, and refreshed with its refresh
  token ``leeway_s`` before it expires; a rotated refresh token is saved. No token at all, or an
  expired one without a refresh token, raises :class:`ReauthorizationRequired`.

The last tokens seen are kept in memory, so a send with a fresh token reads nothing.

One renewal at a time per installation: the first caller starts it as a task and every
concurrent caller awaits that same task (its result or its error). The task is shielded from
the callers' cancellation, so a rotated refresh token the provider has issued is always saved.
After a provider 401, :meth:`~OAuthTokens.after_unauthorized` forces one renewal (unless another
caller has already replaced the rejected token) for the send path's single retry.

A refusal from the token endpoint marks the installation (``"error"``) and raises
:class:`ReauthorizationRequired` (flow "0") or :class:`ClientCredentialsRefused` (flow "1"). A
transient failure (:class:`TokenEndpointUnavailable`) marks nothing. If a refresh is refused
because another replica has already rotated the refresh token, the tokens it saved are used.

The authorization-code flow: :meth:`~OAuthTokens.begin_authorization` returns the URL to send the
admin to, with a single-use state bound to the installation (kept by a :class:`StateStore`) and a
PKCE S256 challenge, always (RFC 7636 and RFC 9700 recommend it for every client; a provider
that does not know PKCE ignores the unknown parameters). The gateway's callback calls
:meth:`~OAuthTokens.complete_authorization` with the state and code it received.

For an integration with a stand-in (docs/format.md, "Proving a definition"), the token requests
go to the stand-in (the transport redirects them, as it does the integration's other calls) and
the authorization URL handed to the admin points at it too.

Nothing here logs or reports a token, a secret, a code or a state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeAlias

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.client import OAuth2Client

from server.engine import Definition, OAuth2Config, Value
from server.metrics import NO_METRICS, Metrics
from server.outbound import StandIn

from ._errors import (
    AuthorizationDenied,
    AuthorizationStateExpired,
    AuthorizationStateMismatch,
    AuthorizationStateReplayed,
    ClientCredentialsRefused,
    InvalidOAuthSetup,
    ReauthorizationRequired,
    UnknownAuthorizationState,
)
from ._renewals import Renewals
from ._secrets import installation_secrets
from ._state import MemoryStateStore, PendingAuthorization, StateStore, state_key
from ._templates import render_text, render_url
from ._token_endpoint import TokenEndpoint, TokenRefused
from ._vault import TokenSet, TokenVault

__all__ = ["OAuthTokens", "ResolveInstallation"]

logger = logging.getLogger(__name__)

#: Looks an installation up for :meth:`OAuthTokens.complete_authorization`: its definition and
#: property values.
ResolveInstallation: TypeAlias = Callable[[str], Awaitable[tuple[Definition, Mapping[str, Value]]]]

_STATE_BYTES = 32
_VERIFIER_LENGTH = 64  # RFC 7636 §4.1: 43–128 characters


def _oauth2(definition: Definition) -> OAuth2Config:
    if definition.oauth2 is None:
        raise InvalidOAuthSetup(f"integration {definition.id!r} does not use OAuth2")
    return definition.oauth2


def _error_code(error: str) -> str:
    code = "".join(ch for ch in error if ch.isalnum() or ch in "_-.")[:64]
    return code or "error"


class OAuthTokens:
    """Access tokens for OAuth2 installations, and the authorization-code flow.

    ``vault`` keeps the tokens; ``transport`` carries every token request (pass one that applies
    the outbound policy, e.g. :class:`OutboundTransport`); ``states`` keeps pending authorizations
    (in memory by default); ``timeout_s`` bounds each token request; ``leeway_s`` is how long
    before expiry a token is renewed; ``state_ttl_s`` is how long an authorization may take;
    ``clock`` gives epoch seconds; ``stand_ins`` (integration id → stand-in; none by default)
    says whose authorization URLs point at a stand-in.
    """

    def __init__(
        self,
        *,
        vault: TokenVault,
        transport: httpx.AsyncBaseTransport,
        states: StateStore | None = None,
        timeout_s: float = 10.0,
        leeway_s: float = 60.0,
        state_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.time,
        stand_ins: Mapping[str, StandIn] | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._vault = vault
        self._transport = transport
        self._states: StateStore = states if states is not None else MemoryStateStore()
        self._timeout_s = timeout_s
        self._leeway_s = leeway_s
        self._state_ttl_s = state_ttl_s
        self._clock = clock
        self._stand_ins = dict(stand_ins or {})
        self._renewals = Renewals()

    # -- the send path ----------------------------------------------------------------------

    async def bearer_token(
        self, installation_id: str, definition: Definition, properties: Mapping[str, Value]
    ) -> str:
        """A valid access token for the installation, renewed first when it is (nearly) expired.

        Raises :class:`ReauthorizationRequired` (flow "0": never authorized, expired without a
        refresh token, or the refresh was refused), :class:`ClientCredentialsRefused` (flow "1"),
        :class:`TokenEndpointUnavailable`, :class:`InvalidOAuthSetup`, or
        :class:`server.outbound.PolicyRefused`.
        """
        _oauth2(definition)
        fresh = await self._renewals.fresh(
            installation_id, self._vault, self._clock(), self._leeway_s
        )
        if fresh is not None:
            return fresh.access_token
        renewed = await self._renew(installation_id, definition, properties, force=False)
        return renewed.access_token

    async def after_unauthorized(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        *,
        rejected_token: str | None = None,
    ) -> str:
        """A new access token after the provider answered 401 to ``rejected_token``.

        Renews once, whatever the expiry says; when another caller has already replaced
        ``rejected_token`` (concurrent sends that all got 401), its token is returned instead.
        Raises as :meth:`bearer_token`.
        """
        _oauth2(definition)
        renewed = await self._renew(
            installation_id, definition, properties, force=True, rejected=rejected_token
        )
        if rejected_token is not None and renewed.access_token == rejected_token:
            # Joined a renewal that had begun before the 401 and kept the rejected token.
            renewed = await self._renew(
                installation_id, definition, properties, force=True, rejected=rejected_token
            )
        return renewed.access_token

    def _renew(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        *,
        force: bool,
        rejected: str | None = None,
    ) -> Awaitable[TokenSet]:
        """Join the installation's renewal in progress, or start one."""
        return self._renewals.join(
            installation_id,
            lambda: self._renew_now(installation_id, definition, properties, force, rejected),
            name=f"oauth-renew-{installation_id}",
        )

    def known_tokens(self, installation_id: str) -> tuple[str, ...]:
        """The access and refresh tokens last seen for the installation (in memory; after a
        :meth:`bearer_token` call, the ones in use), to mask them in a provider's answer."""
        tokens = self._renewals.seen(installation_id)
        if tokens is None:
            return ()
        return tuple(t for t in (tokens.access_token, tokens.refresh_token) if t)

    async def _renew_now(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        force: bool,
        rejected: str | None,
    ) -> TokenSet:
        async with self._vault.renewal(installation_id):
            try:
                return await self._renew_locked(
                    installation_id, definition, properties, force, rejected
                )
            except Exception:
                self._metrics.oauth_refresh(definition.id, "failed")
                raise

    async def _renew_locked(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        force: bool,
        rejected: str | None,
    ) -> TokenSet:
        config = _oauth2(definition)
        stored = await self._vault.load(installation_id)
        if (
            stored is not None
            and stored.is_fresh(self._clock(), self._leeway_s)
            and (not force or (rejected is not None and stored.access_token != rejected))
        ):
            return stored  # renewed meanwhile (by another caller or replica)
        endpoint = self._endpoint(definition, config, properties, installation_id)
        if config.flow_type == "1":
            try:
                tokens = await endpoint.client_credentials()
            except TokenRefused as exc:
                explanation = f"the token endpoint refused them ({exc.summary})"
                await self._vault.mark(installation_id, "error", explanation)
                raise ClientCredentialsRefused(
                    explanation, installation_id=installation_id
                ) from None
        else:
            tokens = await self._refresh(installation_id, endpoint, stored, rejected=force)
        await self._vault.save(installation_id, tokens)
        await self._vault.mark(installation_id, "authorized", None)
        self._metrics.oauth_refresh(definition.id, "ok")
        logger.info(
            "installation %s: new OAuth2 access token (%s)",
            installation_id,
            "no expiry given"
            if tokens.expires_at is None
            else f"expires in {tokens.expires_at - int(self._clock())} s",
        )
        return tokens

    async def _refresh(
        self,
        installation_id: str,
        endpoint: TokenEndpoint,
        stored: TokenSet | None,
        *,
        rejected: bool,
    ) -> TokenSet:
        if stored is None:
            raise ReauthorizationRequired("not authorized yet", installation_id=installation_id)
        if not stored.refresh_token:
            explanation = (
                "the provider no longer accepts the access token"
                if rejected
                else "the access token expired"
            ) + " and it issued no refresh token"
            await self._vault.mark(installation_id, "expired", explanation)
            raise ReauthorizationRequired(explanation, installation_id=installation_id)
        try:
            tokens = await endpoint.refresh(stored.refresh_token)
        except TokenRefused as exc:
            current = await self._vault.load(installation_id)
            if (
                current is not None
                and current.refresh_token != stored.refresh_token
                and current.is_fresh(self._clock(), self._leeway_s)
            ):
                return current  # another replica rotated the refresh token first
            explanation = f"the provider refused the refresh token ({exc.summary})"
            await self._vault.mark(installation_id, "error", explanation)
            raise ReauthorizationRequired(explanation, installation_id=installation_id) from None
        if tokens.refresh_token != stored.refresh_token:
            logger.info("installation %s: the provider rotated the refresh token", installation_id)
        return tokens

    def _endpoint(
        self,
        definition: Definition,
        config: OAuth2Config,
        properties: Mapping[str, Value],
        installation_id: str,
    ) -> TokenEndpoint:
        return TokenEndpoint(
            url=render_url(definition, "/OAuth2/token_endpoint", config.token_endpoint, properties),
            client_id=render_text(config.client_id, properties),
            client_secret=render_text(config.client_secret, properties),
            content_type=config.token_content_type,
            transport=self._transport,
            timeout_s=self._timeout_s,
            clock=self._clock,
            mask=installation_secrets(definition, properties),
            integration=definition.id,
            installation_id=installation_id,
        )

    # -- the authorization-code flow --------------------------------------------------------

    async def begin_authorization(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        redirect_uri: str,
    ) -> tuple[str, str]:
        """The authorization URL to send the admin to, and its ``state``.

        The URL is the definition's ``authorization_endpoint`` with its
        ``authorization_parameters`` and ``client_id``, ``redirect_uri``, ``response_type=code``,
        ``state`` and a PKCE S256 ``code_challenge``; with the stand-in's scheme, host and port
        when the integration has one. The state is good for one callback within ``state_ttl_s``,
        for this installation only.
        """
        config = _oauth2(definition)
        if config.flow_type != "0" or not config.authorization_endpoint:
            raise InvalidOAuthSetup(
                f"integration {definition.id!r} uses the client credentials flow; "
                "there is nothing for an admin to authorize"
            )
        endpoint = config.authorization_endpoint
        if config.authorization_parameters:
            separator = "&" if "?" in endpoint else "?"
            endpoint = f"{endpoint}{separator}{config.authorization_parameters}"
        base_url = render_url(definition, "/OAuth2/authorization_endpoint", endpoint, properties)
        stand_in = self._stand_ins.get(definition.id)
        if stand_in is not None:
            base_url = stand_in.redirect(base_url)
            logger.info(
                "authorization URL sent to a stand-in",
                extra={"integration": definition.id, "stand_in": stand_in.base},
            )
        state = secrets.token_urlsafe(_STATE_BYTES)
        verifier = generate_token(_VERIFIER_LENGTH)
        client = OAuth2Client(
            None,
            client_id=render_text(config.client_id, properties),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        url, _ = client.create_authorization_url(base_url, state=state, code_verifier=verifier)
        now = self._clock()
        await self._states.save(
            state_key(state),
            PendingAuthorization(
                installation_id=installation_id,
                redirect_uri=redirect_uri,
                code_verifier=verifier,
                expires_at=now + self._state_ttl_s,
            ),
            now=now,
        )
        logger.info("installation %s: authorization begun", installation_id)
        return str(url), state

    async def complete_authorization(
        self,
        state: str,
        code: str | None,
        resolve: ResolveInstallation,
        *,
        installation_id: str | None = None,
        error: str | None = None,
    ) -> str:
        """Finish an authorization from the callback's ``state`` and ``code`` (or ``error``, when
        the provider sent the admin back without a code); returns the installation's id.

        The state is used up by this call whatever happens next. ``installation_id``, when the
        callback knows which installation it is for, must be the one the state was issued for.
        ``resolve`` looks up the installation's definition and property values. The code is
        exchanged at the token endpoint, the tokens saved and the installation marked
        ``"authorized"``.

        Raises :class:`AuthorizationStateError` (unknown, expired, replayed, another
        installation's), :class:`AuthorizationDenied`, :class:`ReauthorizationRequired` (the
        provider refused the code), :class:`TokenEndpointUnavailable`, :class:`InvalidOAuthSetup`.
        """
        now = self._clock()
        consumed = await self._states.consume(state_key(state), now=now)
        if consumed is None:
            raise UnknownAuthorizationState()
        pending = consumed.pending
        if not consumed.first_use:
            logger.warning(
                "installation %s: an authorization state was replayed", pending.installation_id
            )
            raise AuthorizationStateReplayed()
        if now >= pending.expires_at:
            raise AuthorizationStateExpired()
        if installation_id is not None and installation_id != pending.installation_id:
            logger.warning(
                "installation %s: a callback presented another installation's state",
                installation_id,
            )
            raise AuthorizationStateMismatch(installation_id=installation_id)
        owner = pending.installation_id
        if error is not None or not code:
            explanation = (
                f"the provider answered {_error_code(error)}"
                if error is not None
                else "the provider sent no authorization code"
            )
            await self._vault.mark(owner, "error", explanation)
            raise AuthorizationDenied(explanation, installation_id=owner)
        definition, properties = await resolve(owner)
        config = _oauth2(definition)
        endpoint = self._endpoint(definition, config, properties, owner)
        try:
            tokens = await endpoint.exchange_code(
                code, redirect_uri=pending.redirect_uri, code_verifier=pending.code_verifier
            )
        except TokenRefused as exc:
            explanation = f"the provider refused the authorization code ({exc.summary})"
            await self._vault.mark(owner, "error", explanation)
            raise ReauthorizationRequired(explanation, installation_id=owner) from None
        running = self._renewals.running(owner)
        if running is not None:
            await asyncio.wait([running])  # a renewal of the old tokens must not overwrite these
        await self._vault.save(owner, tokens)
        self._renewals.remember(owner, tokens)
        await self._vault.mark(owner, "authorized", None)
        logger.info("installation %s: authorized", owner)
        return owner
