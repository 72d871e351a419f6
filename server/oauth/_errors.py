"""The OAuth2 and JWT errors, each a :class:`server.errors.GatewayError` with its gRPC code.

    ReauthorizationRequired        FAILED_PRECONDITION  flow "0": an admin must authorize again
    ClientCredentialsRefused       FAILED_PRECONDITION  flow "1": the token endpoint refused the
                                                        client id / secret
    AuthorizationDenied            FAILED_PRECONDITION  the provider redirected back with an error
    InvalidOAuthSetup              FAILED_PRECONDITION  no OAuth2 here, the wrong flow, an endpoint
                                                        or JWT key that cannot be used
    TokenEndpointUnavailable       UNAVAILABLE          5xx, 429, timeout, no connection: transient,
                                                        the installation is not marked
    TokenRequestRefused            FAILED_PRECONDITION  (ext) a Token auth's request was refused
                                                        (4xx, or a 2xx that yields no token)
    TokenRequestUnavailable        UNAVAILABLE          (ext) a Token auth's request failed: 5xx,
                                                        429, timeout, no connection
    AuthorizationStateError        INVALID_ARGUMENT     a callback's ``state`` is refused:
     ├── UnknownAuthorizationState                      never issued (or long forgotten)
     ├── AuthorizationStateExpired                      issued too long ago
     ├── AuthorizationStateReplayed                     already used once
     └── AuthorizationStateMismatch                     issued for another installation

Messages are built from names, error codes and statuses, never from a secret value. An outbound
policy refusal is not wrapped: :class:`server.outbound.PolicyRefused` reaches the caller as it is.
"""

from __future__ import annotations

from server.errors import FailedPrecondition, InvalidRequest, Unavailable

__all__ = [
    "AuthorizationDenied",
    "AuthorizationStateError",
    "AuthorizationStateExpired",
    "AuthorizationStateMismatch",
    "AuthorizationStateReplayed",
    "ClientCredentialsRefused",
    "InvalidOAuthSetup",
    "ReauthorizationRequired",
    "TokenEndpointUnavailable",
    "TokenRequestRefused",
    "TokenRequestUnavailable",
    "UnknownAuthorizationState",
]


def _metadata(installation_id: str | None) -> dict[str, str]:
    return {} if installation_id is None else {"installation": installation_id}


class ReauthorizationRequired(FailedPrecondition):
    """The installation has no usable token and only an admin can get one (flow "0").

    ``explanation`` says why (``"not authorized yet"``, the provider's error code …).
    """

    default_reason = "OAUTH_REAUTHORIZATION_REQUIRED"

    def __init__(self, explanation: str, *, installation_id: str | None = None) -> None:
        super().__init__(
            "the installation must be authorized again with the provider "
            f"(BeginAuthorization): {explanation}",
            metadata=_metadata(installation_id),
        )
        self.explanation = explanation


class ClientCredentialsRefused(FailedPrecondition):
    """The token endpoint refused the client credentials (flow "1"): fix the properties."""

    default_reason = "OAUTH_CLIENT_CREDENTIALS_REFUSED"

    def __init__(self, explanation: str, *, installation_id: str | None = None) -> None:
        super().__init__(
            "the provider refused the installation's OAuth2 client credentials; check the "
            f"client id and secret properties: {explanation}",
            metadata=_metadata(installation_id),
        )
        self.explanation = explanation


class AuthorizationDenied(FailedPrecondition):
    """The provider sent the admin back without a code (``error=access_denied`` …)."""

    default_reason = "OAUTH_AUTHORIZATION_DENIED"

    def __init__(self, explanation: str, *, installation_id: str | None = None) -> None:
        super().__init__(
            f"the authorization was not granted: {explanation}",
            metadata=_metadata(installation_id),
        )
        self.explanation = explanation


class InvalidOAuthSetup(FailedPrecondition):
    """The definition or the installation's properties cannot be used for this OAuth2/JWT step."""

    default_reason = "OAUTH_INVALID_SETUP"


class TokenEndpointUnavailable(Unavailable):
    """The token endpoint could not be reached or failed (5xx, 429, timeout): try again later."""

    default_reason = "OAUTH_TOKEN_ENDPOINT_UNAVAILABLE"


class TokenRequestRefused(FailedPrecondition):
    """(ext) A Token auth's token request was refused (docs/format.md, "Tokens from a request"):
    the properties it sends need fixing. Built with the plain constructor, so that it can be
    stored and read back like any error (:meth:`GatewayError.from_stored`)."""

    default_reason = "TOKEN_REQUEST_REFUSED"


class TokenRequestUnavailable(Unavailable):
    """(ext) A Token auth's token request failed (5xx, 429, timeout, no connection): try again
    later."""

    default_reason = "TOKEN_REQUEST_UNAVAILABLE"


class AuthorizationStateError(InvalidRequest):
    """A callback's ``state`` is refused; no token request was made."""

    default_reason = "OAUTH_INVALID_STATE"


class UnknownAuthorizationState(AuthorizationStateError):
    default_reason = "OAUTH_UNKNOWN_STATE"

    def __init__(self) -> None:
        super().__init__(
            "this authorization state was never issued (or has been forgotten); "
            "start the authorization again"
        )


class AuthorizationStateExpired(AuthorizationStateError):
    default_reason = "OAUTH_STATE_EXPIRED"

    def __init__(self) -> None:
        super().__init__("this authorization took too long; start the authorization again")


class AuthorizationStateReplayed(AuthorizationStateError):
    default_reason = "OAUTH_STATE_REPLAYED"

    def __init__(self) -> None:
        super().__init__(
            "this authorization state has already been used; a state is good for one callback"
        )


class AuthorizationStateMismatch(AuthorizationStateError):
    default_reason = "OAUTH_STATE_MISMATCH"

    def __init__(self, *, installation_id: str) -> None:
        super().__init__(
            "this authorization state was issued for another installation",
            metadata={"installation": installation_id},
        )
