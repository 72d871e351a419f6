"""OAuth2 end to end against a real authorization server (authlib) on 127.0.0.1: the
authorization-code flow with PKCE, client credentials, expiry and refresh, rotated refresh tokens,
refresh after a 401, one refresh for many concurrent callers, a revoked refresh token, refused
states, token requests under the outbound policy, and no secret in any log record."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import aiohttp
import grpc
import pytest
from _authorization_server import RunningAuthorizationServer
from _oauth_setup import (
    CLIENT_ID,
    CLIENT_SECRET,
    FORM,
    REDIRECT_URI,
    FakeClock,
    OAuthSetup,
    oauth_definition,
)

from server.engine import Definition, Value
from server.errors import FailedPrecondition
from server.oauth import (
    AuthorizationDenied,
    AuthorizationStateExpired,
    AuthorizationStateMismatch,
    AuthorizationStateReplayed,
    ClientCredentialsRefused,
    MemoryTokenVault,
    OAuthTokens,
    OutboundTransport,
    ReauthorizationRequired,
    TokenEndpointUnavailable,
    UnknownAuthorizationState,
)
from server.outbound import OutboundClient, OutboundPolicy, PolicyRefused

DEFINITION = oauth_definition()
INSTALLATION = "inst-1"


def resolver(setup: OAuthSetup, definition: Definition = DEFINITION):  # type: ignore[no-untyped-def]
    async def resolve(installation_id: str) -> tuple[Definition, Mapping[str, Value]]:
        return definition, setup.properties

    return resolve


async def approve(url: str, *, confirm: str = "yes") -> dict[str, str]:
    """Play the admin's browser: open the consent page, answer it, read the redirect."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url) as page:
            assert page.status == 200, await page.text()
            assert CLIENT_ID in await page.text()
        async with browser.post(url, data={"confirm": confirm}, allow_redirects=False) as answer:
            assert answer.status == 302
            location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def authorize(setup: OAuthSetup, installation_id: str = INSTALLATION) -> None:
    url, state = await setup.tokens.begin_authorization(
        installation_id, DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    assert callback["state"] == state
    done = await setup.tokens.complete_authorization(
        callback["state"], callback["code"], resolver(setup), installation_id=installation_id
    )
    assert done == installation_id


async def call_api(setup: OAuthSetup, token: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{setup.provider.base_url}/api", headers={"Authorization": f"Bearer {token}"}
        ) as answer,
    ):
        return answer.status


# -- the authorization-code flow -------------------------------------------------------------


async def test_authorization_url_carries_client_redirect_state_parameters_and_pkce(
    setup: OAuthSetup,
) -> None:
    url, state = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{setup.provider.base_url}/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["response_type"] == "code"
    assert query["state"] == state
    assert query["scope"] == "api refresh_token"  # the definition's authorization_parameters
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256 digest
    assert len(state) >= 40
    second_url, second_state = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    assert second_state != state
    second = parse_qs(urlsplit(second_url).query)
    assert second["code_challenge"][0] != query["code_challenge"]


async def test_authorization_code_flow_end_to_end(setup: OAuthSetup) -> None:
    server = setup.provider.server
    await authorize(setup)

    stored = setup.vault.tokens[INSTALLATION]
    assert setup.vault.states[INSTALLATION] == ("authorized", None)
    assert stored.refresh_token is not None
    assert stored.expires_at == int(setup.clock.now) + 3600
    assert stored.scope == "api refresh_token"
    (exchange,) = server.requests_of("authorization_code")
    assert exchange.content_type == FORM
    assert exchange.basic_auth  # client_secret_basic for a form body
    assert "client_secret" not in exchange.form
    assert exchange.form["redirect_uri"] == REDIRECT_URI
    # PKCE: the server checked the verifier against the challenge it was given.
    challenge = server.authorize_requests[-1]["code_challenge"]
    verifier = exchange.form["code_verifier"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge

    loads = setup.vault.loads
    for _ in range(5):
        token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
        assert token == stored.access_token
    assert setup.vault.loads == loads  # kept in memory: a send reads nothing
    assert await call_api(setup, token) == 200
    assert len(server.token_requests) == 1  # a fresh token is used as it is

    # Another process sharing the vault reads it once, then keeps the token too.
    other = OAuthTokens(
        vault=setup.vault, transport=OutboundTransport(setup.outbound), clock=setup.clock
    )
    for _ in range(3):
        assert await other.bearer_token(INSTALLATION, DEFINITION, setup.properties) == token
    assert setup.vault.loads == loads + 1


async def test_json_token_endpoint_gets_a_json_body_with_client_credentials(
    setup: OAuthSetup,
) -> None:
    definition = oauth_definition(content_type="application/json")
    url, _ = await setup.tokens.begin_authorization(
        INSTALLATION, definition, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    await setup.tokens.complete_authorization(
        callback["state"], callback["code"], resolver(setup, definition)
    )
    (exchange,) = setup.provider.server.requests_of("authorization_code")
    assert exchange.content_type == "application/json"
    assert not exchange.basic_auth
    assert exchange.form["client_id"] == CLIENT_ID
    assert exchange.form["client_secret"] == CLIENT_SECRET
    assert setup.vault.states[INSTALLATION] == ("authorized", None)


async def test_denied_authorization_marks_the_installation(setup: OAuthSetup) -> None:
    url, _ = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url, confirm="no")
    assert callback["error"] == "access_denied"
    with pytest.raises(AuthorizationDenied) as caught:
        await setup.tokens.complete_authorization(
            callback["state"], callback.get("code"), resolver(setup), error=callback["error"]
        )
    assert "access_denied" in caught.value.message
    assert setup.vault.states[INSTALLATION][0] == "error"
    assert INSTALLATION not in setup.vault.tokens
    assert setup.provider.server.token_requests == []


async def test_replayed_state_is_refused(setup: OAuthSetup) -> None:
    url, _ = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    await setup.tokens.complete_authorization(callback["state"], callback["code"], resolver(setup))
    first = setup.vault.tokens[INSTALLATION]

    with pytest.raises(AuthorizationStateReplayed) as caught:
        await setup.tokens.complete_authorization(
            callback["state"], callback["code"], resolver(setup)
        )
    assert caught.value.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(setup.provider.server.requests_of("authorization_code")) == 1
    assert setup.vault.tokens[INSTALLATION] is first


async def test_state_from_another_installation_is_refused_and_used_up(setup: OAuthSetup) -> None:
    url, _ = await setup.tokens.begin_authorization(
        "inst-A", DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    with pytest.raises(AuthorizationStateMismatch):
        await setup.tokens.complete_authorization(
            callback["state"], callback["code"], resolver(setup), installation_id="inst-B"
        )
    assert setup.vault.tokens == {}
    assert setup.provider.server.token_requests == []
    # The state was presented once: it cannot be used again, not even for its own installation.
    with pytest.raises(AuthorizationStateReplayed):
        await setup.tokens.complete_authorization(
            callback["state"], callback["code"], resolver(setup), installation_id="inst-A"
        )


async def test_unknown_and_expired_states_are_refused(setup: OAuthSetup) -> None:
    with pytest.raises(UnknownAuthorizationState):
        await setup.tokens.complete_authorization("never-issued", "code", resolver(setup))
    url, state = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    setup.clock.advance(601)  # the default state lifetime is 10 minutes
    with pytest.raises(AuthorizationStateExpired):
        await setup.tokens.complete_authorization(state, callback["code"], resolver(setup))
    assert setup.provider.server.token_requests == []


async def test_a_refused_code_marks_the_installation(setup: OAuthSetup) -> None:
    url, _ = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    with pytest.raises(ReauthorizationRequired) as caught:
        await setup.tokens.complete_authorization(
            callback["state"], "not-the-code", resolver(setup)
        )
    assert "invalid_grant" in caught.value.explanation
    assert setup.vault.states[INSTALLATION][0] == "error"


# -- flow "0": tokens in use -----------------------------------------------------------------


async def test_not_authorized_yet(setup: OAuthSetup) -> None:
    with pytest.raises(ReauthorizationRequired) as caught:
        await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    assert caught.value.explanation == "not authorized yet"
    assert isinstance(caught.value, FailedPrecondition)
    assert caught.value.grpc_code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.reason == "OAUTH_REAUTHORIZATION_REQUIRED"
    assert "authorized again" in caught.value.message
    assert setup.provider.server.token_requests == []


async def test_refresh_before_expiry_saves_the_rotated_refresh_token(setup: OAuthSetup) -> None:
    server = setup.provider.server
    await authorize(setup)
    first = setup.vault.tokens[INSTALLATION]
    assert first.expires_at is not None

    setup.clock.advance(3600 - 61)  # just outside the 60 s leeway: still used as it is
    assert await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties) == (
        first.access_token
    )
    assert server.requests_of("refresh_token") == []

    setup.clock.advance(2)  # inside the leeway: refreshed before it expires
    token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    second = setup.vault.tokens[INSTALLATION]
    assert token == second.access_token != first.access_token
    assert second.refresh_token not in (None, first.refresh_token)
    assert server.refresh_tokens[first.refresh_token or ""].revoked
    (refresh,) = server.requests_of("refresh_token")
    assert refresh.form["refresh_token"] == first.refresh_token
    assert await call_api(setup, token) == 200

    # The next refresh uses the rotated refresh token (the old one is revoked at the server).
    setup.clock.advance(3600)
    third_token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    assert server.requests_of("refresh_token")[-1].form["refresh_token"] == second.refresh_token
    assert third_token == setup.vault.tokens[INSTALLATION].access_token
    assert setup.vault.states[INSTALLATION] == ("authorized", None)


async def test_refresh_without_rotation_keeps_the_refresh_token(setup: OAuthSetup) -> None:
    server = setup.provider.server
    server.rotate_refresh_tokens = False
    await authorize(setup)
    first = setup.vault.tokens[INSTALLATION]
    for _ in range(2):
        setup.clock.advance(3600)
        await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
        assert setup.vault.tokens[INSTALLATION].refresh_token == first.refresh_token
    assert len(server.requests_of("refresh_token")) == 2


async def test_refresh_after_401(setup: OAuthSetup) -> None:
    server = setup.provider.server
    await authorize(setup)
    token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    server.revoke_access_tokens()  # e.g. the provider revoked it before its expiry
    assert await call_api(setup, token) == 401

    retry = await setup.tokens.after_unauthorized(
        INSTALLATION, DEFINITION, setup.properties, rejected_token=token
    )
    assert retry != token
    assert await call_api(setup, retry) == 200
    assert len(server.requests_of("refresh_token")) == 1


async def test_twenty_concurrent_callers_during_a_refresh_make_one_token_request(
    setup: OAuthSetup,
) -> None:
    server = setup.provider.server
    await authorize(setup)
    setup.clock.advance(3600)
    server.hold()
    server.token_request_arrived.clear()
    first = asyncio.create_task(
        setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    )
    await server.token_request_arrived.wait()  # the refresh is at the provider now
    others = [
        asyncio.create_task(setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties))
        for _ in range(19)
    ]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in [first, *others])  # all wait for the one refresh
    server.release()
    tokens = await asyncio.gather(first, *others)
    assert len(server.requests_of("refresh_token")) == 1
    assert set(tokens) == {setup.vault.tokens[INSTALLATION].access_token}


async def test_concurrent_401s_make_one_refresh(setup: OAuthSetup) -> None:
    server = setup.provider.server
    await authorize(setup)
    token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    server.revoke_access_tokens()
    retries = await asyncio.gather(
        *(
            setup.tokens.after_unauthorized(
                INSTALLATION, DEFINITION, setup.properties, rejected_token=token
            )
            for _ in range(20)
        )
    )
    assert len(server.requests_of("refresh_token")) == 1
    assert len(set(retries)) == 1
    assert retries[0] != token
    assert await call_api(setup, retries[0]) == 200


async def test_a_cancelled_caller_does_not_lose_a_rotated_refresh_token(
    setup: OAuthSetup,
) -> None:
    server = setup.provider.server
    await authorize(setup)
    first = setup.vault.tokens[INSTALLATION]
    setup.clock.advance(3600)
    server.hold()
    server.token_request_arrived.clear()
    caller = asyncio.create_task(
        setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    )
    await server.token_request_arrived.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    server.release()
    # The refresh goes on without its caller, and the rotated refresh token is saved.
    async with asyncio.timeout(30):
        while True:
            if setup.vault.tokens[INSTALLATION] is not first:
                break
            await asyncio.sleep(0.01)
    saved = setup.vault.tokens[INSTALLATION]
    assert saved.refresh_token != first.refresh_token
    assert saved.refresh_token in server.refresh_tokens
    assert not server.refresh_tokens[saved.refresh_token or ""].revoked


async def test_a_revoked_refresh_token_marks_the_installation(setup: OAuthSetup) -> None:
    server = setup.provider.server
    await authorize(setup)
    server.revoke_refresh_tokens()
    setup.clock.advance(3600)
    with pytest.raises(ReauthorizationRequired) as caught:
        await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    assert caught.value.grpc_code == grpc.StatusCode.FAILED_PRECONDITION
    assert "invalid_grant" in caught.value.explanation
    state, reason = setup.vault.states[INSTALLATION]
    assert state == "error"
    assert reason is not None and "invalid_grant" in reason
    # After a new authorization the installation works again.
    await authorize(setup)
    assert setup.vault.states[INSTALLATION] == ("authorized", None)
    token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    assert await call_api(setup, token) == 200


async def test_a_token_without_expiry_or_refresh_token_needs_reauthorization_after_401(
    setup: OAuthSetup,
) -> None:
    server = setup.provider.server
    server.expires_in = None
    server.clients[CLIENT_ID].grant_types = ("authorization_code",)  # no refresh tokens
    await authorize(setup)
    stored = setup.vault.tokens[INSTALLATION]
    assert stored.expires_at is None and stored.refresh_token is None
    setup.clock.advance(10 * 365 * 86400)
    assert await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties) == (
        stored.access_token
    )
    with pytest.raises(ReauthorizationRequired):
        await setup.tokens.after_unauthorized(
            INSTALLATION, DEFINITION, setup.properties, rejected_token=stored.access_token
        )
    assert setup.vault.states[INSTALLATION][0] == "expired"


async def test_another_replica_rotating_first_is_not_an_error(setup: OAuthSetup) -> None:
    """Two gateways share the vault; the second's refresh is refused because the first already
    rotated the refresh token, and it uses the tokens the first saved."""
    server = setup.provider.server
    await authorize(setup)
    setup.clock.advance(3600)
    replica = OAuthTokens(
        vault=setup.vault,
        transport=OutboundTransport(setup.outbound),
        clock=setup.clock,
    )
    stale = setup.vault.tokens[INSTALLATION]

    class Racing(MemoryTokenVault):
        """The vault as the second replica sees it: the stale tokens, until its refresh fails."""

        def __init__(self) -> None:
            super().__init__()
            self.loads = 0

        async def load(self, installation_id: str):  # type: ignore[no-untyped-def]
            self.loads += 1
            return stale if self.loads <= 2 else await setup.vault.load(installation_id)

        async def save(self, installation_id: str, tokens) -> None:  # type: ignore[no-untyped-def]
            await setup.vault.save(installation_id, tokens)

        async def mark(self, installation_id: str, state: str, error: str | None) -> None:
            await setup.vault.mark(installation_id, state, error)

    fresh = await replica.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    second = OAuthTokens(
        vault=Racing(), transport=OutboundTransport(setup.outbound), clock=setup.clock
    )
    assert await second.bearer_token(INSTALLATION, DEFINITION, setup.properties) == fresh
    assert len(server.requests_of("refresh_token")) == 2  # the second one was refused
    assert setup.vault.states[INSTALLATION] == ("authorized", None)


# -- flow "1": client credentials ------------------------------------------------------------


@pytest.mark.parametrize("content_type", [FORM, "application/json"])
async def test_client_credentials(setup: OAuthSetup, content_type: str) -> None:
    server = setup.provider.server
    definition = oauth_definition(flow="1", content_type=content_type)
    token = await setup.tokens.bearer_token(INSTALLATION, definition, setup.properties)
    assert await call_api(setup, token) == 200
    assert setup.vault.states[INSTALLATION] == ("authorized", None)
    (request,) = server.requests_of("client_credentials")
    assert request.content_type == content_type
    if content_type == FORM:
        assert request.basic_auth and "client_secret" not in request.form
    else:
        assert not request.basic_auth and request.form["client_secret"] == CLIENT_SECRET

    assert await setup.tokens.bearer_token(INSTALLATION, definition, setup.properties) == token
    assert len(server.requests_of("client_credentials")) == 1

    setup.clock.advance(3600)  # expired: a new token is fetched, no refresh token involved
    renewed = await setup.tokens.bearer_token(INSTALLATION, definition, setup.properties)
    assert renewed != token
    assert len(server.requests_of("client_credentials")) == 2
    assert server.requests_of("refresh_token") == []

    server.revoke_access_tokens()
    retry = await setup.tokens.after_unauthorized(
        INSTALLATION, definition, setup.properties, rejected_token=renewed
    )
    assert await call_api(setup, retry) == 200


async def test_refused_client_credentials_mark_the_installation(setup: OAuthSetup) -> None:
    definition = oauth_definition(flow="1")
    properties = {**setup.properties, "Client Secret": "wrong-secret"}
    with pytest.raises(ClientCredentialsRefused) as caught:
        await setup.tokens.bearer_token(INSTALLATION, definition, properties)
    assert "invalid_client" in caught.value.explanation
    assert caught.value.grpc_code == grpc.StatusCode.FAILED_PRECONDITION
    assert setup.vault.states[INSTALLATION][0] == "error"
    with pytest.raises(Exception, match="client credentials flow"):
        await setup.tokens.begin_authorization(INSTALLATION, definition, properties, REDIRECT_URI)


# -- failures that are not the installation's ------------------------------------------------


async def test_an_unavailable_token_endpoint_marks_nothing(setup: OAuthSetup) -> None:
    server = setup.provider.server
    await authorize(setup)
    server.fail_status = 503
    setup.clock.advance(3600)
    with pytest.raises(TokenEndpointUnavailable) as caught:
        await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    assert caught.value.grpc_code == grpc.StatusCode.UNAVAILABLE
    assert "503" in caught.value.message
    assert setup.vault.states[INSTALLATION] == ("authorized", None)
    server.fail_status = None  # the provider is back: the same refresh token works
    token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    assert await call_api(setup, token) == 200


async def test_a_token_request_that_takes_too_long_times_out(
    setup: OAuthSetup, outbound: OutboundClient, clock: FakeClock
) -> None:
    server = setup.provider.server
    impatient = OAuthTokens(
        vault=setup.vault, transport=OutboundTransport(outbound), timeout_s=0.2, clock=clock
    )
    server.hold()
    try:
        with pytest.raises(TokenEndpointUnavailable):
            await impatient.bearer_token(INSTALLATION, oauth_definition(flow="1"), setup.properties)
    finally:
        server.release()
    assert INSTALLATION not in setup.vault.states


async def test_token_requests_obey_the_outbound_policy(
    provider: RunningAuthorizationServer, clock: FakeClock
) -> None:
    vault = MemoryTokenVault()
    properties = {
        "Client ID": CLIENT_ID,
        "Client Secret": CLIENT_SECRET,
        "Auth Host": f"127.0.0.1:{provider.port}",
    }
    async with OutboundClient(policy=OutboundPolicy()) as strict:  # public addresses only
        tokens = OAuthTokens(vault=vault, transport=OutboundTransport(strict), clock=clock)
        with pytest.raises(PolicyRefused):
            await tokens.bearer_token(INSTALLATION, oauth_definition(flow="1"), properties)
    assert provider.server.token_requests == []
    assert vault.states == {}


# -- secrets ---------------------------------------------------------------------------------


async def test_no_secret_in_any_log_record_or_error(
    setup: OAuthSetup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = setup.provider.server
    messages: list[str] = []

    url, state = await setup.tokens.begin_authorization(
        INSTALLATION, DEFINITION, setup.properties, REDIRECT_URI
    )
    callback = await approve(url)
    await setup.tokens.complete_authorization(state, callback["code"], resolver(setup))
    with pytest.raises(AuthorizationStateReplayed) as replayed:
        await setup.tokens.complete_authorization(state, callback["code"], resolver(setup))
    messages.append(str(replayed.value))
    setup.clock.advance(3600)
    token = await setup.tokens.bearer_token(INSTALLATION, DEFINITION, setup.properties)
    await setup.tokens.after_unauthorized(
        INSTALLATION, DEFINITION, setup.properties, rejected_token=token
    )
    server.revoke_refresh_tokens()
    with pytest.raises(ReauthorizationRequired) as refused:
        await setup.tokens.after_unauthorized(INSTALLATION, DEFINITION, setup.properties)
    messages.append(str(refused.value))
    with pytest.raises(ClientCredentialsRefused) as wrong:
        await setup.tokens.bearer_token(
            "inst-2", oauth_definition(flow="1"), {**setup.properties, "Client Secret": "x-wrong-x"}
        )
    messages.append(str(wrong.value))
    # A token endpoint whose URL holds a secret property (the provider ignores the query).
    in_url = oauth_definition(flow="1", token_query="?key=$Client Secret$")
    await setup.tokens.bearer_token("inst-3", in_url, setup.properties)
    messages.extend(str(reason) for _, reason in setup.vault.states.values())
    messages.extend(repr(tokens) for tokens in setup.vault.tokens.values())

    secrets = {CLIENT_SECRET, "x-wrong-x", state, callback["code"]}
    secrets |= set(server.access_tokens) | set(server.refresh_tokens)
    secrets |= {r.form["code_verifier"] for r in server.requests_of("authorization_code")}
    secrets |= {base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()}
    assert len(server.refresh_tokens) >= 2
    ours = [r for r in caplog.records if not r.name.startswith("authlib")]
    assert any(r.name.startswith("server.oauth") for r in ours)
    logged = [r.getMessage() for r in ours] + [json.dumps(r.args, default=str) for r in ours]
    text = "\n".join(logged + messages)
    for secret in secrets:
        assert secret not in text
