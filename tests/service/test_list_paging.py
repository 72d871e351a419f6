"""Every List RPC reads its page request alike: a negative page_size or a page_token the server
did not give is INVALID_ARGUMENT with the field named, ListEvents included. The lists that page
by key (integrations, installations, messages, webhooks) list every row once however many are
added between pages."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, definition

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


def _token(value: object) -> str:
    """A page token written by hand, as a caller tampering with ours would."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


_KEYED_LISTS: dict[str, Callable[[Gateway, str], Awaitable[object]]] = {
    "ListIntegrations": lambda g, token: g.stub.ListIntegrations(
        gateway_pb2.ListIntegrationsRequest(page_token=token)
    ),
    "ListInstallations": lambda g, token: g.stub.ListInstallations(
        gateway_pb2.ListInstallationsRequest(page_token=token)
    ),
    "ListMessages": lambda g, token: g.stub.ListMessages(
        gateway_pb2.ListMessagesRequest(page_token=token)
    ),
    "ListWebhooks": lambda g, token: g.stub.ListWebhooks(
        gateway_pb2.ListWebhooksRequest(page_token=token)
    ),
    "ListUnmatchedWebhooks": lambda g, token: g.stub.ListUnmatchedWebhooks(
        gateway_pb2.ListUnmatchedWebhooksRequest(page_token=token)
    ),
}


@pytest.mark.parametrize("method", sorted(_KEYED_LISTS))
@pytest.mark.parametrize(
    "token",
    [
        "40",  # an offset, as these lists' tokens were before they paged by key
        _token([1, "a", "b"]),
        _token([1]),
        _token(["1", "a"]),
        _token({"at": 1, "id": "a"}),
        _token([10**30, "a"]),
    ],
)
async def test_a_page_token_not_ours_is_refused_by_the_lists_that_page_by_key(
    gateway: Gateway, method: str, token: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _KEYED_LISTS[method](gateway, token)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_installations_listed_page_by_page_are_each_listed_once_while_more_are_added(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    integration = await gateway.register(definition(provider.url))
    first = [
        await gateway.enable(integration.id, numbers={f"+1555000{n:04d}": ["101"]})
        for n in range(7)
    ]
    seen: list[str] = []
    added: list[str] = []
    token = ""
    while True:
        page = await gateway.stub.ListInstallations(
            gateway_pb2.ListInstallationsRequest(page_size=2, page_token=token)
        )
        seen.extend(i.id for i in page.installations)
        if not page.next_page_token:
            break
        token = page.next_page_token
        if len(added) < 3:
            # Added between pages: newer than every one listed, so listed once at the end.
            number = f"+1555100{len(added):04d}"
            added.append((await gateway.enable(integration.id, numbers={number: ["101"]})).id)
    assert len(seen) == len(set(seen))
    assert seen[: len(first)] == [i.id for i in first]
    assert set(seen) == {i.id for i in first} | set(added)
