"""Outbound HTTP to providers: one pooled client under an SSRF policy.

:class:`OutboundClient` sends a :class:`server.engine.RenderedRequest` and returns a
:class:`ProviderResponse`; :class:`OutboundPolicy` says which addresses it may connect to; a
:class:`StandIn` sends one integration's calls to another base URL, for trying a definition.
Every error is an :class:`OutboundError` (the tree is drawn in :mod:`server.outbound._errors`).
"""

from ._client import OutboundClient, PolicyResolver, ProviderResponse
from ._errors import (
    ConnectFailed,
    InvalidTarget,
    OutboundError,
    OutboundTimeout,
    PolicyRefused,
    TransportError,
)
from ._policy import OutboundPolicy, numeric_host
from ._stand_in import StandIn, check_stand_in, parse_stand_ins

__all__ = [
    "ConnectFailed",
    "InvalidTarget",
    "OutboundClient",
    "OutboundError",
    "OutboundPolicy",
    "OutboundTimeout",
    "PolicyRefused",
    "PolicyResolver",
    "ProviderResponse",
    "StandIn",
    "TransportError",
    "check_stand_in",
    "numeric_host",
    "parse_stand_ins",
]
