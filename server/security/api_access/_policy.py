"""Who may call what: API tokens with scopes, and the decision for one call.

Tokens are kept only as SHA-256 digests. A presented token is hashed and compared with every
known digest in constant time (``hmac.compare_digest``, without stopping at a match), so neither
the comparison nor the position of a match shows in the time a refusal takes.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...errors import PermissionDenied, Unauthenticated
from ._methods import Requirement, required_access, serves_org_scoped

__all__ = [
    "AccessPolicy",
    "ApiToken",
    "Metadata",
    "Scope",
    "bearer_token",
    "hash_token",
    "scope_refusal",
]

Metadata = Iterable[tuple[str, str | bytes]]


class Scope(enum.StrEnum):
    """What a token may do: ``read`` the Gateway, do everything on it (``full``), or ``ingest``."""

    READ = "read"
    FULL = "full"
    INGEST = "ingest"


_GRANTS: dict[Scope, frozenset[Requirement]] = {
    Scope.READ: frozenset({Requirement.READ}),
    Scope.FULL: frozenset({Requirement.READ, Requirement.WRITE}),
    Scope.INGEST: frozenset({Requirement.INGEST}),
}

# The scope a refusal names as the one needed.
_NEEDED: dict[Requirement, Scope] = {
    Requirement.READ: Scope.READ,
    Requirement.WRITE: Scope.FULL,
    Requirement.INGEST: Scope.INGEST,
}


def hash_token(token: str) -> bytes:
    """The SHA-256 digest of ``token`` (UTF-8): what a token file's ``sha256:HEX`` holds."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiToken:
    """One accepted token: its scope, its digest, a name for logs (never the token) and the
    organisations it may act as (empty: every organisation)."""

    scope: Scope
    digest: bytes = field(repr=False)
    name: str
    orgs: frozenset[str] = frozenset()

    def may(self, need: Requirement) -> bool:
        return need in _GRANTS[self.scope]


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessPolicy:
    """The accepted tokens. With none, every call is allowed (the interceptor is not installed)."""

    tokens: tuple[ApiToken, ...] = ()

    @property
    def enforced(self) -> bool:
        """Whether calls need tokens (any token configured, the ingest one included)."""
        return bool(self.tokens)

    def identify(self, token: str) -> ApiToken | None:
        """The configured token equal to ``token``, compared in constant time; else None."""
        digest = hash_token(token)
        found: ApiToken | None = None
        for candidate in self.tokens:
            if hmac.compare_digest(candidate.digest, digest) and found is None:
                found = candidate
        return found

    def authorize(self, method: str, metadata: Metadata) -> ApiToken | None:
        """Whether a call of ``method`` with this metadata may proceed.

        Returns the caller's token (None for an open method or when nothing is enforced); raises
        :class:`Unauthenticated` for a missing, malformed or unknown token and
        :class:`PermissionDenied` for a token whose scope does not cover the method, or a token
        scoped to organisations calling a method that is not per organisation (see
        :mod:`server.security.api_access._methods`). What the request itself names is checked by the
        handler (:class:`server.security.api_access.Caller`).
        """
        if not self.tokens:
            return None
        need = required_access(method)
        if need is Requirement.OPEN:
            return None
        caller = self.identify(bearer_token(metadata))
        if caller is None:
            raise Unauthenticated("the bearer token is not known", reason="TOKEN_UNKNOWN")
        if not caller.may(need):
            raise scope_refusal(caller, need, method)
        if caller.orgs and not serves_org_scoped(method):
            name = method.rpartition("/")[2] or method
            raise PermissionDenied(
                f"a token scoped to organisations cannot call {name}: it is not an "
                "organisation's own call and needs a token without orgs=",
                reason="ORG_SCOPED_TOKEN",
                metadata={"method": method},
            )
        return caller


def scope_refusal(
    caller: ApiToken, need: Requirement, method: str, why: str = ""
) -> PermissionDenied:
    """The refusal of ``method`` to ``caller``, whose scope does not cover ``need``; ``why``
    (", as a durable consumer", say) says what in the call needs it."""
    needed = _NEEDED[need]
    name = method.rpartition("/")[2] or method
    return PermissionDenied(
        f"a {caller.scope} token cannot call {name}{why}: it needs a {needed} token",
        reason="SCOPE_INSUFFICIENT",
        metadata={"method": method, "scope": str(caller.scope), "required": str(needed)},
    )


def bearer_token(metadata: Metadata) -> str:
    """The token of the one ``authorization: Bearer <token>`` entry; Unauthenticated if none."""
    values = [value for key, value in metadata if key.lower() == "authorization"]
    if not values:
        raise Unauthenticated(
            "this call needs a token: send the metadata 'authorization: Bearer <token>'",
            reason="TOKEN_MISSING",
        )
    if len(values) > 1:
        raise Unauthenticated(
            "more than one authorization metadata entry was sent", reason="TOKEN_MALFORMED"
        )
    value = values[0]
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    scheme, _, token = text.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "the authorization metadata must be 'Bearer <token>'", reason="TOKEN_MALFORMED"
        )
    return token
