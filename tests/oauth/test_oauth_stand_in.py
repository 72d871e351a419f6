"""OAuth2 under a stand-in (docs/format.md, "Proving a definition"): the token requests and the
authorization URL of the integration with a stand-in go to the fake provider over real sockets,
another integration's stay where its definition says, and the outbound policy still judges the
stand-in's address."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Mapping
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from _authorization_server import RunningAuthorizationServer
from _oauth_setup import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, FakeClock, oauth_definition

from server.demo import Answer, RunningFakeProvider, start_fake_provider
from server.engine import Definition, Value
from server.oauth import MemoryTokenVault, OAuthTokens, OutboundTransport, ResolveInstallation
from server.outbound import OutboundClient, OutboundPolicy, PolicyRefused, parse_stand_ins

TRIED = "oauth-provider"
TOKEN = {"access_token": "from-the-stand-in", "token_type": "Bearer", "expires_in": 3600}
LOOPBACK = OutboundPolicy.from_strings(allow=["127.0.0.1"])


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    async with await start_fake_provider() as running:
        yield running


def _tokens(outbound: OutboundClient, fake: RunningFakeProvider, clock: FakeClock) -> OAuthTokens:
    return OAuthTokens(
        vault=MemoryTokenVault(),
        transport=OutboundTransport(outbound),
        timeout_s=5.0,
        clock=clock,
        stand_ins=parse_stand_ins([f"{TRIED}={fake.url}"]),
    )


def _properties(provider: RunningAuthorizationServer) -> dict[str, str]:
    return {
        "Client ID": CLIENT_ID,
        "Client Secret": CLIENT_SECRET,
        "Auth Host": f"127.0.0.1:{provider.port}",
    }


async def test_token_requests_of_the_integration_with_a_stand_in_go_to_it_and_no_other(
    provider: RunningAuthorizationServer,
    fake: RunningFakeProvider,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    fake.state.script("/token", Answer(json=TOKEN))
    stand_ins = parse_stand_ins([f"{TRIED}={fake.url}"])
    properties = _properties(provider)
    async with OutboundClient(policy=LOOPBACK, stand_ins=stand_ins) as outbound:
        tokens = _tokens(outbound, fake, clock)
        tried = oauth_definition(flow="1", token_query="?realm=sms")
        assert await tokens.bearer_token("i-1", tried, properties) == "from-the-stand-in"
        (request,) = fake.state.requests
        assert (request.method, request.path, request.query) == (
            "POST",
            "/token",
            (("realm", "sms"),),
        )
        assert dict(request.form or ())["grant_type"] == "client_credentials"
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        assert request.header("Authorization") == f"Basic {basic}"
        assert provider.server.token_requests == []

        other = oauth_definition(flow="1", integration_id="other-provider")
        assert await tokens.bearer_token("i-2", other, properties) != "from-the-stand-in"
        assert len(provider.server.requests_of("client_credentials")) == 1
        assert len(fake.state.requests) == 1
    redirected = [r for r in caplog.records if r.getMessage() == "provider call sent to a stand-in"]
    assert [(r.integration, r.stand_in) for r in redirected] == [(TRIED, fake.url)]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert CLIENT_SECRET not in logged and "from-the-stand-in" not in logged


async def test_the_authorization_url_points_at_the_stand_in_which_completes_the_flow(
    provider: RunningAuthorizationServer,
    fake: RunningFakeProvider,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.oauth")
    properties = _properties(provider)
    async with OutboundClient(
        policy=LOOPBACK, stand_ins=parse_stand_ins([f"{TRIED}={fake.url}"])
    ) as outbound:
        tokens = _tokens(outbound, fake, clock)
        tried = oauth_definition(flow="0")
        url, state = await tokens.begin_authorization("i-1", tried, properties, REDIRECT_URI)
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{fake.url}/authorize"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert (query["scope"], query["state"], query["client_id"]) == (
            "api refresh_token",
            state,
            CLIENT_ID,
        )
        # The admin's browser: the fake approves at once and sends it back with a code.
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(url, allow_redirects=False) as page,
        ):
            assert page.status == 302
            back = urlsplit(page.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT_URI
        returned = {k: v[0] for k, v in parse_qs(back.query).items()}
        assert returned["state"] == state

        fake.state.script("/token", Answer(json={**TOKEN, "refresh_token": "r-1"}))
        owner = await tokens.complete_authorization(
            returned["state"], returned["code"], _resolver(tried, properties)
        )
        assert owner == "i-1"
        exchange = fake.state.requests_to("/token")[-1]
        form = dict(exchange.form or ())
        assert (form["grant_type"], form["code"]) == ("authorization_code", returned["code"])
        assert form["code_verifier"]
        assert await tokens.bearer_token("i-1", tried, properties) == "from-the-stand-in"
        assert provider.server.token_requests == [] and provider.server.authorize_requests == []

        other = oauth_definition(flow="0", integration_id="other-provider")
        url, _ = await tokens.begin_authorization("i-2", other, properties, REDIRECT_URI)
        assert url.startswith(f"{provider.base_url}/authorize?")
    pointed = [
        r for r in caplog.records if r.getMessage() == "authorization URL sent to a stand-in"
    ]
    assert [(r.integration, r.stand_in) for r in pointed] == [(TRIED, fake.url)]


def _resolver(definition: Definition, properties: Mapping[str, Value]) -> ResolveInstallation:
    async def resolve(installation_id: str) -> tuple[Definition, Mapping[str, Value]]:
        return definition, properties

    return resolve


async def test_the_outbound_policy_still_judges_a_token_request_sent_to_a_stand_in(
    provider: RunningAuthorizationServer, clock: FakeClock
) -> None:
    # The policy lets calls reach the definition's own host (127.0.0.1), not the stand-in's
    # address (127.0.0.2): the redirected token request is refused where it would connect.
    async with await start_fake_provider(host="127.0.0.2") as fake:
        stand_ins = parse_stand_ins([f"{TRIED}={fake.url}"])
        async with OutboundClient(policy=LOOPBACK, stand_ins=stand_ins) as outbound:
            tokens = _tokens(outbound, fake, clock)
            with pytest.raises(PolicyRefused, match="loopback"):
                await tokens.bearer_token("i-1", oauth_definition(flow="1"), _properties(provider))
        assert fake.state.requests == []
    assert provider.server.token_requests == []
