"""(ext) Contact names looked up, end to end (docs/format.md, "Contact names"): an inbound
message without a name starts one lookup of its sender, through the outbound client and the
exchange log (secrets masked), and never holds the webhook; the answer, cached, names the
sender's later messages — one lookup for several messages — and a name the payload carries
is kept as it is, with no lookup."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from server.demo import Answer, RunningFakeProvider
from server.store import ExchangeKind, ProviderExchange

from .conftest import SEED_MODELS, Gateway, definition
from .test_inbound import (
    hook_path,
    http,  # noqa: F401 (a fixture)
    inbound,  # noqa: F401 (a fixture)
    post,
    subscribe_from_now,
)

OURS, THEIRS = "+15550001111", "psid-2459371"

# The seed's message model, with the provider's id and the name a payload may carry.
[_SEED] = SEED_MODELS
MODEL: dict[str, Any] = {
    **_SEED,
    "request_parameters": {
        "method": "$event_key$",
        "params": {
            **_SEED["request_parameters"]["params"],
            "id": "$messageid$",
            "name": "$contact_name?$",
        },
    },
    "keep": ["contact_name"],
}


def lookup_definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url))
    doc["Webhook"] = [MODEL]
    doc["API"]["LookupContact"] = {
        "request_method": "GET",
        "request_url": provider_url + "/profiles/$from$",
        "request_parameters": {"fields": "first_name,last_name", "access_token": "$API key$"},
        "response_map": {"first_name": "$first_name$", "last_name": "$last_name$"},
        "contact_name": ["$first_name$ $last_name$", "$first_name$"],
    }
    return json.dumps(doc)


def _message(n: int, **extra: str) -> dict[str, Any]:
    params = {"id": f"m{n}", "from": THEIRS, "to": OURS, "content": f"hello {n}", **extra}
    return {"method": "message", "params": params}


async def test_one_lookup_names_the_senders_later_messages(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await inbound.register(lookup_definition(provider.url))
    installation = await inbound.enable("acme-sms")
    path = hook_path(installation)
    profile = "/profiles/" + THEIRS
    provider.state.script(profile, Answer(json={"first_name": "Peter", "last_name": "Chang"}))
    log = inbound.server.exchanges
    names = inbound.server.contact_names
    assert log is not None and names is not None
    kept: list[ProviderExchange] = []  # as the store is given them: built and masked

    async def record_exchanges(exchanges: Sequence[ProviderExchange]) -> None:
        kept.extend(exchanges)

    monkeypatch.setattr(inbound.server.store, "record_exchanges", record_exchanges)
    subscriber = await subscribe_from_now(inbound)
    try:
        # The first message is stored and answered without waiting for the lookup it starts.
        assert await post(http, inbound, path, _message(1)) == (200, "")
        await names.idle()
        for n in (2, 3):
            assert await post(http, inbound, path, _message(n)) == (200, "")
        events = await subscriber.wait_for(3)
    finally:
        await subscriber.close()

    assert [(e.text, dict(e.fields)) for e in events] == [
        ("hello 1", {}),
        ("hello 2", {"contact_name": "Peter Chang"}),
        ("hello 3", {"contact_name": "Peter Chang"}),
    ]
    [asked] = provider.state.requests_to(profile)
    assert asked.method == "GET"
    assert asked.query == (("fields", "first_name,last_name"), ("access_token", "key-123"))
    await log.flush()
    [exchange] = kept
    assert (exchange.kind, exchange.message_id) == (ExchangeKind.CONTACT_LOOKUP, None)
    assert "key-123" not in exchange.url and "key-123" not in str(exchange.request_headers)


async def test_a_name_in_the_payload_is_kept_and_a_failed_lookup_names_nobody(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await inbound.register(lookup_definition(provider.url))
    installation = await inbound.enable("acme-sms")
    path = hook_path(installation)
    profile = "/profiles/" + THEIRS
    provider.state.script(profile, Answer(status=500, json={"error": {"code": 2}}))
    names = inbound.server.contact_names
    assert names is not None
    subscriber = await subscribe_from_now(inbound)
    try:
        assert await post(http, inbound, path, _message(1, name="Pete")) == (200, "")
        await names.idle()
        assert provider.state.requests_to(profile) == []  # the payload named the sender
        assert await post(http, inbound, path, _message(2)) == (200, "")
        await names.idle()
        assert await post(http, inbound, path, _message(3)) == (200, "")
        await names.idle()
        events = await subscriber.wait_for(3)
    finally:
        await subscriber.close()
    assert [dict(e.fields) for e in events] == [{"contact_name": "Pete"}, {}, {}]
    # The failure is remembered for a while: the third message asked nothing.
    assert len(provider.state.requests_to(profile)) == 1
