"""OAuth2 and JWT auth for provider calls (docs/format.md, "Authentication"), built on authlib.

:class:`OAuthTokens` gives the send path a valid OAuth2 access token per installation
(:meth:`~OAuthTokens.bearer_token`, :meth:`~OAuthTokens.after_unauthorized`) and runs the
authorization-code flow (:meth:`~OAuthTokens.begin_authorization`,
:meth:`~OAuthTokens.complete_authorization`). Tokens live in a :class:`TokenVault`, pending
authorizations in a :class:`StateStore`; both have in-memory forms. Token requests go through an
httpx transport: :class:`OutboundTransport` sends them through the gateway's
:class:`server.outbound.OutboundClient`, under its outbound policy.

:class:`JwtTokens` and :func:`sign_jwt` sign the (ext) JWT auth's tokens; :class:`RequestTokens`
obtains and renews the (ext) Token auth's tokens with the definition's own token request.

:func:`installation_secrets` gives the :class:`server.security.secrets.SecretMask` of every secret
an installation's provider calls carry; whatever a provider answers is masked with it before it is
kept or returned (the token endpoint's errors here, the send and Subscribe paths' errors).

Every error is a :class:`server.errors.GatewayError` with its gRPC code (see
:mod:`server.oauth._errors`), except an outbound policy refusal, which stays a
:class:`server.outbound.PolicyRefused`.
"""

from ._errors import (
    AuthorizationDenied,
    AuthorizationStateError,
    AuthorizationStateExpired,
    AuthorizationStateMismatch,
    AuthorizationStateReplayed,
    ClientCredentialsRefused,
    InvalidOAuthSetup,
    ReauthorizationRequired,
    TokenEndpointUnavailable,
    TokenRequestRefused,
    TokenRequestUnavailable,
    UnknownAuthorizationState,
)
from ._jwt import JwtTokens, sign_jwt
from ._request_tokens import RequestTokens
from ._secrets import installation_secrets
from ._state import (
    ConsumedState,
    MemoryStateStore,
    PendingAuthorization,
    StateStore,
    state_key,
)
from ._tokens import OAuthTokens, ResolveInstallation
from ._transport import ExchangeHook, OutboundTransport
from ._vault import AuthorizationState, MemoryTokenVault, TokenSet, TokenVault

__all__ = [
    "AuthorizationDenied",
    "AuthorizationState",
    "AuthorizationStateError",
    "AuthorizationStateExpired",
    "AuthorizationStateMismatch",
    "AuthorizationStateReplayed",
    "ClientCredentialsRefused",
    "ConsumedState",
    "ExchangeHook",
    "InvalidOAuthSetup",
    "JwtTokens",
    "MemoryStateStore",
    "MemoryTokenVault",
    "OAuthTokens",
    "OutboundTransport",
    "PendingAuthorization",
    "ReauthorizationRequired",
    "RequestTokens",
    "ResolveInstallation",
    "StateStore",
    "TokenEndpointUnavailable",
    "TokenRequestRefused",
    "TokenRequestUnavailable",
    "TokenSet",
    "TokenVault",
    "UnknownAuthorizationState",
    "installation_secrets",
    "sign_jwt",
    "state_key",
]
