"""The provider exchange log in the API (docs/operations.md, "Provider exchanges"): a stored
:class:`~server.store.ProviderExchange` (already masked) as ``ProviderExchange``."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from msgbridge.v1 import gateway_pb2

from ..store import ProviderExchange

__all__ = ["exchange_pb", "headers_pb"]


def headers_pb(pairs: Iterable[tuple[str, str]]) -> list[gateway_pb2.ProviderExchange.Header]:
    return [gateway_pb2.ProviderExchange.Header(name=name, value=value) for name, value in pairs]


def exchange_pb(record: ProviderExchange) -> gateway_pb2.ProviderExchange:
    started_at = timestamp_pb2.Timestamp()
    started_at.FromDatetime(record.started_at)
    return gateway_pb2.ProviderExchange(
        exchange_id=record.id,
        kind=record.kind.value,
        method=record.method,
        url=record.url,
        request_headers=headers_pb(record.request_headers),
        request_body=record.request_body,
        status=record.status,
        response_headers=headers_pb(record.response_headers),
        response_body=record.response_body,
        started_at=started_at,
        duration_ms=record.duration_ms,
        error=record.error,
        installation_id=record.installation_id,
        integration_id=record.integration_id,
    )
