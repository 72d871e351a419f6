"""Outbound HTTP to providers: one pooled client under an SSRF policy.

:class:`OutboundClient` sends a :class:`server.engine.RenderedRequest` and returns a
:class:`ProviderResponse`; :class:`OutboundPolicy` says which addresses it may connect to. Every
error is an :class:`OutboundError` (the tree is drawn in :mod:`server.outbound._errors`).
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
    "TransportError",
    "numeric_host",
]
