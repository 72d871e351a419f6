"""The caller of one call, for the checks a handler makes with the request in hand.

The interceptor decides by method alone (:meth:`AccessPolicy.authorize`); what a request names
— an organisation, a durable consumer — and what the records it reads belong to are checked in
the handler, through :class:`Caller`:

- **Durable consumers.** Streaming as a named consumer takes leases: the events leased are held
  away from the consumer's other subscribers until acknowledged or expired. So it needs the
  scope that may acknowledge (``full``), like ``AckEvents``; a ``read`` token streams without a
  consumer (resuming after its last cursor).
- **Organisations.** A token with ``orgs=`` acts only as those organisations. When the request

  - names another organisation (``org_id``: a send, an enable, a list or stream filter):
    PERMISSION_DENIED, reason ``ORG_NOT_ALLOWED``;
  - names an installation or a message of another organisation: NOT_FOUND, the very answer for
    an id that does not exist;
  - lists or streams without an organisation filter: only its organisations' records;
  - names a durable consumer: a consumer of its own, kept apart per set of organisations.

  Methods that are not per organisation are refused to it by the interceptor
  (:mod:`server.security.api_access._methods`; reason ``ORG_SCOPED_TOKEN``).

  A refusal never tells whether another organisation's record exists: an organisation named in
  the request is the caller's own input (refused without looking anything up), and a record of
  another organisation is answered exactly as a missing one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...errors import PermissionDenied, Unauthenticated
from ._methods import Requirement
from ._policy import AccessPolicy, ApiToken, Metadata, bearer_token, scope_refusal

__all__ = ["Caller"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a call: their token, or None when no token is configured (anyone may do
    anything)."""

    token: ApiToken | None = None

    @classmethod
    def of(cls, policy: AccessPolicy, metadata: Metadata) -> Caller:
        """The caller of a call with ``metadata`` under ``policy``.

        The interceptor has let the call through already; the token is looked up again so that
        nothing passes from the interceptor to the handler but the call itself. Unauthenticated
        if it is not known (fail closed, should the interceptor ever be missing).
        """
        if not policy.enforced:
            return cls()
        token = policy.identify(bearer_token(metadata))
        if token is None:
            raise Unauthenticated("the bearer token is not known", reason="TOKEN_UNKNOWN")
        return cls(token)

    @property
    def name(self) -> str:
        """The token's name, for logs ("" without tokens); never the token."""
        return "" if self.token is None else self.token.name

    @property
    def orgs(self) -> frozenset[str] | None:
        """The organisations the caller may act as; None for every organisation."""
        if self.token is None or not self.token.orgs:
            return None
        return self.token.orgs

    def sees(self, org_id: str) -> bool:
        """Whether the caller may read and change the records of ``org_id``."""
        orgs = self.orgs
        return orgs is None or org_id in orgs

    def check_org(self, org_id: str) -> None:
        """PERMISSION_DENIED when the request names an organisation the caller is not scoped to
        (an empty ``org_id``, no organisation named, is left to the handler)."""
        if org_id and not self.sees(org_id):
            logger.info("API call refused", extra={"reason": "ORG_NOT_ALLOWED", "token": self.name})
            raise PermissionDenied(
                "this token may not act as the organisation the request names",
                reason="ORG_NOT_ALLOWED",
                metadata={"org": org_id},
            )

    def consumer(self, name: str, *, method: str) -> str:
        """The store's name of the durable consumer ``name``, after checking that the caller may
        take leases (PERMISSION_DENIED otherwise).

        A token scoped to organisations gets a consumer of its own, ``orgs=A,B NAME``: it never
        shares leases with a subscriber that sees other organisations' events (the subscribers
        of one consumer share its events and the position past those their filter skips).
        Organisation ids hold no space or comma (the token file splits on them), so no two sets
        of organisations make the same name.
        """
        if self.token is not None and not self.token.may(Requirement.WRITE):
            refusal = scope_refusal(self.token, Requirement.WRITE, method, " as a durable consumer")
            logger.info(
                "API call refused",
                extra={"method": method, "reason": refusal.reason, "token": self.name},
            )
            raise refusal
        orgs = self.orgs
        if orgs is None:
            return name
        return f"orgs={','.join(sorted(orgs))} {name}"
