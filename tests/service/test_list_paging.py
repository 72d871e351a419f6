"""Every List RPC reads its page request alike: a negative page_size or a page_token the server
did not give is INVALID_ARGUMENT with the field named, ListEvents included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from msgbridge.v1 import gateway_pb2

from .conftest import Gateway

_LISTS: dict[str, Callable[[Gateway, dict[str, Any]], Awaitable[object]]] = {
    "ListIntegrations": lambda g, page: g.stub.ListIntegrations(
        gateway_pb2.ListIntegrationsRequest(**page)
    ),
    "ListInstallations": lambda g, page: g.stub.ListInstallations(
        gateway_pb2.ListInstallationsRequest(**page)
    ),
    "ListEvents": lambda g, page: g.stub.ListEvents(gateway_pb2.ListEventsRequest(**page)),
    "ListUnmatchedWebhooks": lambda g, page: g.stub.ListUnmatchedWebhooks(
        gateway_pb2.ListUnmatchedWebhooksRequest(**page)
    ),
}


@pytest.mark.parametrize("method", sorted(_LISTS))
@pytest.mark.parametrize(
    ("page", "field"), [({"page_size": -1}, "page_size"), ({"page_token": "x"}, "page_token")]
)
async def test_a_bad_page_request_is_refused_by_every_list(
    gateway: Gateway, method: str, page: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _LISTS[method](gateway, page)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_pb2.Status.FromString(
        dict(refused.value.trailing_metadata() or ())["grpc-status-details-bin"]
    )
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details)
    assert [v.field for v in bad.field_violations] == [field]
