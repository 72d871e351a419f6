"""(ext) Tokens from a request of their own (docs/format.md, "Tokens from a request").

:class:`RequestTokens` gives the send path the token of an installation whose definition's
``auth`` is ``Token``: the token kept in the :class:`TokenVault` while it is fresh, else a new one
obtained with the definition's token request — rendered by the engine with the installation's
property values, sent through the gateway's :class:`server.outbound.OutboundClient` as the
integration's call (the outbound policy; the integration's stand-in, if any) and read by
:func:`server.engine.read_token`.

As OAuth2's tokens (:mod:`._tokens`): a token is renewed ``leeway_s`` before it expires (a token
that lives less than that, on each call), and once more after a 401
(:meth:`~RequestTokens.after_unauthorized`); one renewal at a time per installation — in this
process one task that every caller awaits, across replicas the vault's ``renewal`` lock, under
which a token another replica has just saved is used instead of asking again. The last token seen
is kept in memory, so a send with a fresh token reads nothing.

Errors: a refusal (4xx, or a 2xx that yields no token) is :class:`TokenRequestRefused`
(FAILED_PRECONDITION), its reason masked with the installation's secrets; 5xx, 408, 425, 429, a
timeout or no connection is :class:`TokenRequestUnavailable` (UNAVAILABLE); an outbound policy
refusal stays :class:`server.outbound.PolicyRefused`. Nothing here logs or reports a token or a
property value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from server.engine import (
    Definition,
    RenderError,
    TokenAuth,
    Value,
    read_token,
    render_request,
)
from server.errors import FailedPrecondition
from server.outbound import OutboundClient, OutboundError, PolicyRefused

from ._errors import TokenRequestRefused, TokenRequestUnavailable
from ._renewals import Renewals
from ._secrets import installation_secrets
from ._vault import TokenSet, TokenVault

__all__ = ["RequestTokens"]

logger = logging.getLogger(__name__)

_REASON_LIMIT = 200


def _token_auth(definition: Definition) -> TokenAuth:
    if not isinstance(definition.auth, TokenAuth):
        raise FailedPrecondition(
            f"integration {definition.id!r} has no Token auth", reason="TOKEN_AUTH_ABSENT"
        )
    return definition.auth


class RequestTokens:
    """Tokens of Token-auth installations, kept in ``vault`` (sealed, in the store, for the
    service) and obtained through ``outbound``; ``timeout_s`` bounds each token request,
    ``leeway_s`` is how long before expiry a token is renewed, ``clock`` gives epoch seconds."""

    def __init__(
        self,
        *,
        vault: TokenVault,
        outbound: OutboundClient,
        timeout_s: float = 10.0,
        leeway_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._vault = vault
        self._outbound = outbound
        self._timeout_s = timeout_s
        self._leeway_s = leeway_s
        self._clock = clock
        self._renewals = Renewals()

    async def token(
        self, installation_id: str, definition: Definition, properties: Mapping[str, Value]
    ) -> str:
        """A fresh token for the installation: the one kept, or a new one."""
        _token_auth(definition)
        fresh = await self._renewals.fresh(
            installation_id, self._vault, self._clock(), self._leeway_s
        )
        if fresh is not None:
            return fresh.access_token
        renewed = await self._renew(installation_id, definition, properties, rejected=None)
        return renewed.access_token

    async def after_unauthorized(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        *,
        rejected: str,
    ) -> str:
        """A new token after the provider answered 401 to ``rejected``: renewed once, whatever
        its expiry says, unless another caller has already replaced it."""
        _token_auth(definition)
        renewed = await self._renew(installation_id, definition, properties, rejected=rejected)
        if renewed.access_token == rejected:
            # Joined a renewal that had begun before the 401 and kept the rejected token.
            renewed = await self._renew(installation_id, definition, properties, rejected=rejected)
        return renewed.access_token

    def known_tokens(self, installation_id: str) -> tuple[str, ...]:
        """The token last seen for the installation (in memory), to mask it in an answer."""
        seen = self._renewals.seen(installation_id)
        return () if seen is None else (seen.access_token,)

    def _renew(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        *,
        rejected: str | None,
    ) -> Awaitable[TokenSet]:
        """Join the installation's renewal in progress, or start one."""
        return self._renewals.join(
            installation_id,
            lambda: self._renew_locked(installation_id, definition, properties, rejected),
            name=f"token-renew-{installation_id}",
        )

    async def _renew_locked(
        self,
        installation_id: str,
        definition: Definition,
        properties: Mapping[str, Value],
        rejected: str | None,
    ) -> TokenSet:
        async with self._vault.renewal(installation_id):
            stored = await self._vault.load(installation_id)
            if (
                stored is not None
                and stored.is_fresh(self._clock(), self._leeway_s)
                and stored.access_token != rejected
            ):
                return stored  # renewed meanwhile (by another caller or replica)
            tokens = await self._request(installation_id, definition, properties)
            await self._vault.save(installation_id, tokens)
        logger.info(
            "installation %s: new token from the token request (%s)",
            installation_id,
            "no expiry given"
            if tokens.expires_at is None
            else f"expires in {tokens.expires_at - int(self._clock())} s",
        )
        return tokens

    async def _request(
        self, installation_id: str, definition: Definition, properties: Mapping[str, Value]
    ) -> TokenSet:
        """Make the token request and read its answer; raise what a failure is."""
        auth = _token_auth(definition)
        metadata = {"integration": definition.id, "installation": installation_id}
        try:
            rendered = render_request(definition, auth.request, properties)
        except RenderError as exc:
            raise FailedPrecondition(
                f"the token request cannot be built from the installation's settings: {exc}",
                reason="RENDER_FAILED",
                metadata={**metadata, "pointer": exc.pointer},
            ) from None
        host = urlsplit(rendered.url).hostname or "?"
        try:
            answer = await self._outbound.send(
                rendered, timeout=self._timeout_s, integration=definition.id
            )
        except PolicyRefused:
            raise
        except OutboundError as exc:
            raise _unavailable(f"no answer from {host} ({type(exc).__name__})", metadata) from None
        if answer.truncated:
            raise _unavailable(f"{host} answered more than the outbound client accepts", metadata)
        read = read_token(auth, answer.status, answer.body, answer.headers.get("content-type"))
        if read.verdict == "token" and read.token:
            expires_at = None
            if read.lifetime_s is not None:
                expires_at = int(self._clock() + read.lifetime_s)
            return TokenSet(access_token=read.token, expires_at=expires_at)
        if read.verdict == "unavailable":
            raise _unavailable(f"{host} {read.reason}", metadata)
        mask = installation_secrets(definition, properties)
        reason = mask.excerpt(read.reason, _REASON_LIMIT)
        reason = "".join(ch if ch.isprintable() else " " for ch in reason).strip()
        logger.info("installation %s: the token request was refused", installation_id)
        raise TokenRequestRefused(
            "the provider refused the installation's token request; check the properties it "
            f"sends: {reason or 'no reason given'}",
            metadata=metadata,
        )


def _unavailable(why: str, metadata: Mapping[str, str]) -> TokenRequestUnavailable:
    """A token request that failed for a reason that may pass (``why`` names the host and the
    status or the error's kind, never a value)."""
    logger.warning("installation %s: the token request failed: %s", metadata["installation"], why)
    return TokenRequestUnavailable(
        f"the provider's token request failed: {why}; try again later", metadata=metadata
    )
