"""Which RPCs need which access: a table built from the service descriptors.

Gateway methods that only read (``Get*``, ``List*`` and ``StreamEvents``) need a read token; every
other Gateway method needs a full token; the internal ``Ingest`` service needs the ingest token.
Health and reflection are open, so that load balancers and grpcurl work without a token. A method
the table does not know (a service added later, say) needs a full token: new RPCs fail closed.

A token scoped to organisations (``orgs=`` in the token file) may call only the methods of
:data:`ORG_SCOPED_METHODS`, each of which checks, with the request in hand, every organisation the
request names or the record it reads belongs to (:class:`server.security.api_access.Caller`). The
others hold or change every organisation's data and are refused to such a token:
``RegisterIntegration`` and ``DeleteIntegration`` (the catalog is shared) and
``ListUnmatchedWebhooks`` / ``ReplayWebhook`` (an unmatched request belongs to no known
organisation) and ``ListWebhooks`` (every organisation's requests), as is any method added later.
"""

from __future__ import annotations

import enum

from msgbridge.v1 import gateway_pb2, ingest_pb2

__all__ = [
    "OPEN_SERVICES",
    "ORG_SCOPED_METHODS",
    "READ_METHODS",
    "Requirement",
    "gateway_method",
    "required_access",
    "serves_org_scoped",
]


class Requirement(enum.Enum):
    """What a method asks of its caller."""

    OPEN = "open"
    READ = "read"
    WRITE = "write"
    INGEST = "ingest"


_GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
_INGEST = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"]

# StreamEvents with a named consumer also records where that consumer is, but only through
# AckEvents, which is a write.
READ_METHODS: frozenset[str] = frozenset(
    {
        "GetIntegration",
        "ListIntegrations",
        "GetInstallation",
        "ListInstallations",
        "GetMessage",
        "ListMessages",
        "StreamEvents",
        "ListEvents",
        "ListUnmatchedWebhooks",
        "ListWebhooks",
        "ListOptOuts",
        "GetMedia",
    }
)

# What a token scoped to organisations may call. The catalog reads show definitions (shared by
# every organisation, no organisation's data); the rest name an organisation or read a record that
# belongs to one, and their handlers check it.
ORG_SCOPED_METHODS: frozenset[str] = frozenset(
    {
        "GetIntegration",
        "ListIntegrations",
        "EnableIntegration",
        "UpdateInstallation",
        "GetInstallation",
        "ListInstallations",
        "DisableIntegration",
        "SendMessage",
        "SendFile",
        "SendTyping",
        "MarkRead",
        "GetMessage",
        "ListMessages",
        "CancelMessage",
        "StreamEvents",
        "AckEvents",
        "ListEvents",
        "RetrySubscription",
        "BeginAuthorization",
        "ListOptOuts",
        "ClearOptOut",
        "UploadMedia",
        "GetMedia",
    }
)

OPEN_SERVICES: frozenset[str] = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def _table() -> dict[str, Requirement]:
    table: dict[str, Requirement] = {}
    for method in _GATEWAY.methods:
        need = Requirement.READ if method.name in READ_METHODS else Requirement.WRITE
        table[f"/{_GATEWAY.full_name}/{method.name}"] = need
    for method in _INGEST.methods:
        table[f"/{_INGEST.full_name}/{method.name}"] = Requirement.INGEST
    return table


_TABLE = _table()


def required_access(method: str) -> Requirement:
    """What ``method`` (a full gRPC method path, ``/package.Service/Method``) needs."""
    need = _TABLE.get(method)
    if need is not None:
        return need
    service = method.removeprefix("/").partition("/")[0]
    return Requirement.OPEN if service in OPEN_SERVICES else Requirement.WRITE


_ORG_SCOPED_PATHS = frozenset(f"/{_GATEWAY.full_name}/{name}" for name in ORG_SCOPED_METHODS)


def serves_org_scoped(method: str) -> bool:
    """Whether a token scoped to organisations may call ``method`` (a full method path)."""
    return method in _ORG_SCOPED_PATHS


def gateway_method(name: str) -> str:
    """The full method path of the Gateway method ``name`` (``/msgbridge.v1.Gateway/Name``)."""
    return f"/{_GATEWAY.full_name}/{_GATEWAY.methods_by_name[name].name}"
