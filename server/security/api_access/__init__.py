"""Access to the gRPC API: bearer tokens with scopes, TLS and mutual TLS, and the listening rule.

- :class:`AccessPolicy` holds the accepted tokens (``read``, ``full`` or ``ingest`` scope, kept as
  SHA-256 digests, optionally scoped to organisations); :class:`AccessInterceptor` applies it to
  every call: a missing or unknown token is UNAUTHENTICATED, a token whose scope does not cover
  the method PERMISSION_DENIED; health and reflection stay open. With no token configured,
  nothing is enforced.
- :class:`Caller` is what the handlers check with the request in hand: a durable consumer needs
  the ``full`` scope, and a token scoped to organisations reaches only their records (the matrix
  is in :mod:`server.security.api_access._caller` and :mod:`server.security.api_access._methods`).
- :func:`load_server_credentials` makes TLS (and, with a client CA, mutual TLS) credentials.
- :func:`check_exposure` refuses a non-loopback listen address without TLS or tokens, unless
  ``--insecure``.
- :class:`ApiAccess` puts them together from the settings, with the interceptors for
  ``grpc.aio.server`` and :meth:`ApiAccess.bind` for the port.
"""

from ._api import AccessSettings, ApiAccess
from ._caller import Caller
from ._exposure import check_exposure, is_loopback_listen
from ._interceptor import AccessInterceptor
from ._methods import (
    OPEN_SERVICES,
    ORG_SCOPED_METHODS,
    READ_METHODS,
    Requirement,
    gateway_method,
    required_access,
)
from ._policy import AccessPolicy, ApiToken, Scope, hash_token
from ._tls import load_server_credentials
from ._token_file import TOKENS_ENV, load_access_policy, parse_tokens

__all__ = [
    "OPEN_SERVICES",
    "ORG_SCOPED_METHODS",
    "READ_METHODS",
    "TOKENS_ENV",
    "AccessInterceptor",
    "AccessPolicy",
    "AccessSettings",
    "ApiAccess",
    "ApiToken",
    "Caller",
    "Requirement",
    "Scope",
    "check_exposure",
    "gateway_method",
    "hash_token",
    "is_loopback_listen",
    "load_access_policy",
    "load_server_credentials",
    "parse_tokens",
    "required_access",
]
