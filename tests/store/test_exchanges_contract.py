"""The provider exchange log (server/store/_exchanges.py), on every store: exchanges are kept as
given, listed per message in the order they were made, and purged by age."""

from __future__ import annotations

import dataclasses

from test_inbound_contract import at

from server.store import ExchangeKind, ProviderExchange, Store


def exchange(
    exchange_id: str,
    *,
    message_id: str | None = "m1",
    started: float = 0,
    kind: ExchangeKind = ExchangeKind.SEND,
) -> ProviderExchange:
    return ProviderExchange(
        id=exchange_id,
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        message_id=message_id,
        kind=kind,
        method="POST",
        url="https://api.acme.example/messages?key=***",
        request_headers=(("Authorization", "***"), ("X-Tag", "a"), ("X-Tag", "b")),
        request_body='{"to":"+15550100","text":"héllo"}',
        status=201,
        response_headers=(("Content-Type", "application/json"),),
        response_body='{"id":"P1"}',
        started_at=at(started),
        duration_ms=12.5,
    )


async def test_exchanges_are_kept_as_given_and_listed_per_message_in_order(store: Store) -> None:
    first = exchange("x2", started=0)
    retry = dataclasses.replace(
        exchange("x1", started=5, kind=ExchangeKind.RETRY), status=0, error="no answer"
    )
    token = exchange("x3", message_id=None, kind=ExchangeKind.OAUTH_TOKEN)
    other = exchange("x4", message_id="m2")
    await store.record_exchanges([retry, first, token, other])
    await store.record_exchanges([])
    assert await store.list_exchanges("m1") == (first, retry)
    assert await store.list_exchanges("m2") == (other,)
    assert await store.list_exchanges("m1", limit=1) == (first,)
    assert await store.list_exchanges("unknown") == ()


async def test_an_exchange_kept_twice_is_kept_once(store: Store) -> None:
    await store.record_exchanges([exchange("x1")])
    await store.record_exchanges([exchange("x1"), exchange("x2", started=1)])
    assert [x.id for x in await store.list_exchanges("m1")] == ["x1", "x2"]


async def test_exchanges_older_than_the_retention_are_purged(store: Store) -> None:
    await store.record_exchanges(
        [exchange("old", started=0), exchange("older", started=-10), exchange("new", started=60)]
    )
    assert await store.purge_exchanges(at(30)) == 2
    assert [x.id for x in await store.list_exchanges("m1")] == ["new"]
    assert await store.purge_exchanges(at(30)) == 0
