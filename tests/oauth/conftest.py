"""Fixtures for the OAuth2 tests: a real authlib authorization server on 127.0.0.1, an outbound
client that may reach loopback, a fake clock, and the OAuthTokens under test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _authorization_server import RunningAuthorizationServer, start_authorization_server
from _oauth_setup import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, FakeClock, OAuthSetup

from server.oauth import MemoryTokenVault, OAuthTokens, OutboundTransport
from server.outbound import OutboundClient, OutboundPolicy


@pytest.fixture
async def provider() -> AsyncIterator[RunningAuthorizationServer]:
    running = await start_authorization_server()
    running.server.add_client(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    try:
        yield running
    finally:
        await running.runner.cleanup()


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundClient]:
    async with OutboundClient(policy=OutboundPolicy.from_strings(allow=["127.0.0.1"])) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def setup(
    provider: RunningAuthorizationServer, outbound: OutboundClient, clock: FakeClock
) -> OAuthSetup:
    vault = MemoryTokenVault()
    tokens = OAuthTokens(
        vault=vault, transport=OutboundTransport(outbound), timeout_s=5.0, clock=clock
    )
    properties = {
        "Client ID": CLIENT_ID,
        "Client Secret": CLIENT_SECRET,
        "Auth Host": f"127.0.0.1:{provider.port}",
    }
    return OAuthSetup(
        provider=provider,
        tokens=tokens,
        vault=vault,
        clock=clock,
        outbound=outbound,
        properties=properties,
    )
