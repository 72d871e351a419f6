"""(ext) RequestTokens against the fake provider on 127.0.0.1 with a fake clock
(docs/format.md, "Tokens from a request"): expiry by the clock, one renewal for many concurrent
callers, a token another replica saved, POST JSON credentials with a nested answer, the outbound
policy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _oauth_setup import FakeClock

from server.demo import Answer, RunningFakeProvider, start_fake_provider
from server.engine import Definition, load_definition
from server.oauth import MemoryTokenVault, RequestTokens, TokenRequestUnavailable, TokenSet
from server.outbound import OutboundClient, OutboundPolicy, PolicyRefused, parse_stand_ins

PROPERTIES = {"Login": "acct-1", "Password": "pw-91c2"}


def _definition(url: str, *, ttl_s: int | None = None) -> Definition:
    auth: dict[str, Any] = {
        "type": "Token",
        "request": {
            "request_method": "POST",
            "request_url": f"{url}/auth/login",
            "request_parameters": {"login": "$Login$", "password": "$Password$"},
            "response_map": {"data": {"token": "$token$", "ttl": "$expires_in$"}},
        },
        "use": {"headers": {"X-Session": "$token$"}},
    }
    if ttl_s is not None:
        auth["ttl_s"] = ttl_s
    return load_definition(
        json.dumps(
            {
                "id": "json-login",
                "name": "JSON login",
                "class": "sms",
                "properties": [{"name": "Login", "secret": False}, "Password"],
                "auth": auth,
                "API": {
                    "SendMessage": {
                        "request_method": "POST",
                        "request_url": f"{url}/send",
                        "request_parameters": {"to": "$to$", "text": "$content$"},
                        "response_map": {"id": "$messageid$"},
                    }
                },
            }
        )
    )


def _token(value: str, ttl: int | None = 3600) -> Answer:
    data: dict[str, Any] = {"token": value}
    if ttl is not None:
        data["ttl"] = ttl
    return Answer(json={"data": data})


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    async with await start_fake_provider() as running:
        yield running


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundClient]:
    async with OutboundClient(policy=OutboundPolicy.from_strings(allow=["127.0.0.1"])) as client:
        yield client


def _tokens(outbound: OutboundClient, vault: MemoryTokenVault, clock: FakeClock) -> RequestTokens:
    return RequestTokens(vault=vault, outbound=outbound, timeout_s=5.0, clock=clock)


async def test_the_credentials_are_posted_as_json_and_the_nested_token_read(
    fake: RunningFakeProvider, outbound: OutboundClient
) -> None:
    fake.state.script("/auth/login", _token("sess-1"))
    vault, clock = MemoryTokenVault(), FakeClock()
    tokens = _tokens(outbound, vault, clock)

    assert await tokens.token("inst-1", _definition(fake.url), PROPERTIES) == "sess-1"

    (request,) = fake.state.requests_to("/auth/login")
    assert request.method == "POST"
    assert request.json == {"login": "acct-1", "password": "pw-91c2"}
    assert vault.tokens["inst-1"].expires_at == int(clock.now) + 3600
    assert tokens.known_tokens("inst-1") == ("sess-1",)


async def test_a_token_is_renewed_a_minute_before_it_expires(
    fake: RunningFakeProvider, outbound: OutboundClient
) -> None:
    fake.state.script("/auth/login", _token("sess-1"), _token("sess-2"))
    clock = FakeClock()
    tokens = _tokens(outbound, MemoryTokenVault(), clock)
    definition = _definition(fake.url)

    assert await tokens.token("inst-1", definition, PROPERTIES) == "sess-1"
    clock.advance(3600 - 61)
    assert await tokens.token("inst-1", definition, PROPERTIES) == "sess-1"
    clock.advance(2)
    assert await tokens.token("inst-1", definition, PROPERTIES) == "sess-2"
    assert len(fake.state.requests_to("/auth/login")) == 2


async def test_without_a_lifetime_the_fixed_ttl_or_until_a_401(
    fake: RunningFakeProvider, outbound: OutboundClient
) -> None:
    fake.state.script("/auth/login", _token("sess-1", ttl=None), _token("sess-2", ttl=None))
    vault, clock = MemoryTokenVault(), FakeClock()
    tokens = _tokens(outbound, vault, clock)

    await tokens.token("with-ttl", _definition(fake.url, ttl_s=600), PROPERTIES)
    assert vault.tokens["with-ttl"].expires_at == int(clock.now) + 600

    definition = _definition(fake.url)
    assert await tokens.token("no-ttl", definition, PROPERTIES) == "sess-2"
    assert vault.tokens["no-ttl"].expires_at is None
    clock.advance(10 * 86400)
    assert await tokens.token("no-ttl", definition, PROPERTIES) == "sess-2"
    assert len(fake.state.requests_to("/auth/login")) == 2


async def test_concurrent_callers_share_one_token_request(
    fake: RunningFakeProvider, outbound: OutboundClient
) -> None:
    fake.state.script("/auth/login", Answer(json={"data": {"token": "sess-1"}}, delay_s=0.2))
    tokens = _tokens(outbound, MemoryTokenVault(), FakeClock())
    definition = _definition(fake.url)

    got = await asyncio.gather(*(tokens.token("inst-1", definition, PROPERTIES) for _ in range(20)))

    assert set(got) == {"sess-1"}
    assert len(fake.state.requests_to("/auth/login")) == 1


async def test_after_a_401_the_token_another_replica_saved_is_used(
    fake: RunningFakeProvider, outbound: OutboundClient
) -> None:
    fake.state.script("/auth/login", _token("sess-1"), _token("sess-3"))
    vault, clock = MemoryTokenVault(), FakeClock()
    tokens = _tokens(outbound, vault, clock)
    definition = _definition(fake.url)
    await tokens.token("inst-1", definition, PROPERTIES)

    # Another replica renewed first and saved its token in the shared vault.
    vault.tokens["inst-1"] = TokenSet(access_token="sess-2", expires_at=int(clock.now) + 3600)
    renewed = await tokens.after_unauthorized("inst-1", definition, PROPERTIES, rejected="sess-1")
    assert renewed == "sess-2"
    assert len(fake.state.requests_to("/auth/login")) == 1

    # That one rejected too: a token request of our own.
    renewed = await tokens.after_unauthorized("inst-1", definition, PROPERTIES, rejected="sess-2")
    assert renewed == "sess-3"
    assert len(fake.state.requests_to("/auth/login")) == 2


async def test_the_token_request_obeys_the_outbound_policy(fake: RunningFakeProvider) -> None:
    fake.state.script("/auth/login", _token("sess-1"))
    async with OutboundClient(policy=OutboundPolicy.from_strings()) as closed:
        tokens = _tokens(closed, MemoryTokenVault(), FakeClock())
        with pytest.raises(PolicyRefused):
            await tokens.token("inst-1", _definition(fake.url), PROPERTIES)
    assert fake.state.requests_to("/auth/login") == []


async def test_the_token_request_of_an_integration_with_a_stand_in_goes_to_it(
    fake: RunningFakeProvider,
) -> None:
    fake.state.script("/auth/login", _token("sess-1"))
    stand_ins = parse_stand_ins([f"json-login={fake.url}"])
    policy = OutboundPolicy.from_strings(allow=["127.0.0.1"])
    async with OutboundClient(policy=policy, stand_ins=stand_ins) as outbound:
        tokens = _tokens(outbound, MemoryTokenVault(), FakeClock())
        # The definition names a provider host that does not exist: only the stand-in answers.
        definition = _definition("https://api.provider.invalid")
        assert await tokens.token("inst-1", definition, PROPERTIES) == "sess-1"
    assert len(fake.state.requests_to("/auth/login")) == 1


async def test_an_answer_larger_than_the_client_takes_is_unavailable(
    fake: RunningFakeProvider,
) -> None:
    fake.state.script("/auth/login", Answer(json={"data": {"token": "x" * 4096}}))
    policy = OutboundPolicy.from_strings(allow=["127.0.0.1"])
    async with OutboundClient(policy=policy, max_response_bytes=1024) as small:
        tokens = _tokens(small, MemoryTokenVault(), FakeClock())
        with pytest.raises(TokenRequestUnavailable, match="more than the outbound client"):
            await tokens.token("inst-1", _definition(fake.url), PROPERTIES)
    assert tokens.known_tokens("inst-1") == ()
