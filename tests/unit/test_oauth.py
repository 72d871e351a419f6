"""server.oauth without an authorization server: JWT signing (verified with authlib), the token
and state seams, authorization URLs, and the httpx transport over the outbound client."""

from __future__ import annotations

import asyncio
import gzip
import json
import warnings
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import authlib.deprecate
import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.engine import Definition, JwtAuth, Value, load_definition
from server.oauth import (
    ConsumedState,
    InvalidOAuthSetup,
    JwtTokens,
    MemoryStateStore,
    MemoryTokenVault,
    OAuthTokens,
    OutboundTransport,
    PendingAuthorization,
    TokenSet,
    sign_jwt,
    state_key,
)
from server.outbound import OutboundClient, OutboundPolicy, OutboundTimeout, PolicyRefused

with warnings.catch_warnings():
    # authlib.jose is deprecated in favour of joserfc (which signs); it still verifies, and an
    # independent implementation is what a verification test wants.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.jose import JWTClaims
    from authlib.jose import jwt as authlib_jwt

NOW = 1_750_000_000.0
SEND = {
    "request_method": "POST",
    "request_url": "https://api.example.com/messages",
    "request_parameters": {"to": "$to$", "text": "$content$"},
    "response_map": {"id": "$messageid$"},
}


def definition(**top: Any) -> Definition:
    document = {"id": "p", "name": "P", "class": "sms", "API": {"SendMessage": SEND}, **top}
    return load_definition(json.dumps(document))


def jwt_auth(algorithm: str, claims: Mapping[str, Any], ttl_s: int = 900) -> JwtAuth:
    loaded = definition(
        properties=[
            "Application ID",
            "Key",
            {"name": "Region", "secret": False, "required": False},
        ],
        auth={
            "type": "JWT",
            "algorithm": algorithm,
            "key": "$Key$",
            "claims": claims,
            "ttl_s": ttl_s,
        },
    )
    assert isinstance(loaded.auth, JwtAuth)
    return loaded.auth


def rsa_pem() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def verify(token: str, key: str | bytes) -> JWTClaims:
    """The token's claims, after authlib checked its signature and its iat/exp at iat + 1 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        claims = authlib_jwt.decode(token, key)
        claims.validate(now=claims["iat"] + 1)
    return claims


# -- JWT ------------------------------------------------------------------------------------

CLAIMS = {
    "application_id": "$Application ID$",
    "sub": "gateway-$Application ID$",
    "region": "$Region$",
    "acl": {"paths": {"/*/messages/**": {}}},
    "n": 5,
    "flag": True,
    "price": "$$5",
}


def test_rs256_token_verifies_with_the_public_key_and_carries_the_claims() -> None:
    private, public = rsa_pem()
    properties = {"Application ID": "app-1", "Key": private}
    token = sign_jwt(jwt_auth("RS256", CLAIMS), properties, now=NOW + 0.7)
    claims = verify(token, public)
    assert claims.header == {"alg": "RS256", "typ": "JWT"}
    assert claims["application_id"] == "app-1"
    assert claims["sub"] == "gateway-app-1"
    assert "region" not in claims  # a sole placeholder without a value leaves its key out
    assert claims["acl"] == {"paths": {"/*/messages/**": {}}}
    assert (claims["n"], claims["flag"], claims["price"]) == (5, True, "$5")
    assert claims["iat"] == int(NOW)
    assert claims["exp"] == claims["iat"] + 900
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


def test_hs256_token_verifies_with_the_shared_secret() -> None:
    secret = "a shared secret of the provider"
    auth = jwt_auth("HS256", {"iss": "$Application ID$", "iat": "ignored"}, ttl_s=60)
    token = sign_jwt(auth, {"Application ID": "app-2", "Key": secret}, now=NOW)
    claims = verify(token, secret.encode())
    assert claims.header["alg"] == "HS256"
    assert claims["iss"] == "app-2"
    assert claims["iat"] == int(NOW)  # the added claims replace the template's
    assert claims["exp"] == int(NOW) + 60
    with pytest.raises(Exception, match="bad_signature"):
        verify(token, b"another secret entirely, not the one")


def test_every_signed_token_has_its_own_jti() -> None:
    auth = jwt_auth("HS256", {"iss": "x"})
    properties = {"Key": "k" * 32}
    ids = {verify(sign_jwt(auth, properties, now=NOW), b"k" * 32)["jti"] for _ in range(20)}
    assert len(ids) == 20


def test_a_pem_key_with_escaped_line_breaks_is_read() -> None:
    private, public = rsa_pem()
    one_line = private.strip().replace("\n", "\\n")
    token = sign_jwt(jwt_auth("RS256", {}), {"Key": one_line}, now=NOW)
    assert verify(token, public)["exp"] == int(NOW) + 900


@pytest.mark.parametrize("kind", ["garbage", "public", "ec", "empty"])
def test_an_unusable_key_is_refused_without_showing_it(kind: str) -> None:
    _, public = rsa_pem()
    ec_key = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = {"garbage": "not-a-key-9f8e7d", "public": public, "ec": ec_key, "empty": ""}[kind]
    algorithm = "HS256" if kind == "empty" else "RS256"
    with pytest.raises(InvalidOAuthSetup) as caught:
        sign_jwt(jwt_auth(algorithm, {}), {"Key": key}, now=NOW)
    assert "/auth/key" in caught.value.message
    if key:
        assert key not in caught.value.message
        assert all(line not in caught.value.message for line in key.splitlines()[1:2])


def test_jwt_tokens_are_reused_until_near_expiry_and_follow_property_changes() -> None:
    auth = jwt_auth("HS256", {"iss": "$Application ID$"}, ttl_s=900)
    properties = {"Application ID": "app-1", "Key": "s" * 32}
    tokens = JwtTokens(leeway_s=60)
    first = tokens.bearer_token(auth, properties, now=NOW)
    assert tokens.bearer_token(auth, properties, now=NOW + 839) == first
    renewed = tokens.bearer_token(auth, properties, now=NOW + 841)  # within 60 s of exp
    assert renewed != first
    assert verify(renewed, b"s" * 32)["iat"] == int(NOW) + 841
    changed = tokens.bearer_token(auth, {**properties, "Application ID": "app-9"}, now=NOW + 842)
    assert changed != renewed
    assert verify(changed, b"s" * 32)["iss"] == "app-9"


def test_short_lived_jwts_are_reused_for_at_most_half_their_life() -> None:
    auth = jwt_auth("HS256", {}, ttl_s=30)
    tokens = JwtTokens(leeway_s=60)
    first = tokens.bearer_token(auth, {"Key": "s" * 32}, now=NOW)
    assert tokens.bearer_token(auth, {"Key": "s" * 32}, now=NOW + 14) == first
    assert tokens.bearer_token(auth, {"Key": "s" * 32}, now=NOW + 15) != first


# -- tokens and states ----------------------------------------------------------------------


def test_a_token_set_never_shows_its_tokens() -> None:
    tokens = TokenSet(
        access_token="at-SECRET-1", refresh_token="rt-SECRET-2", expires_at=10, scope="api"
    )
    for text in (repr(tokens), str(tokens), f"{tokens}", repr([tokens])):
        assert "SECRET" not in text
        assert "expires_at=10" in text
    assert tokens.is_fresh(now=9, leeway_s=0)
    assert not tokens.is_fresh(now=5, leeway_s=5)
    assert TokenSet(access_token="x").is_fresh(now=1e12, leeway_s=60)
    pending = PendingAuthorization(
        installation_id="i", redirect_uri="https://g/cb", code_verifier="VERIFIER-3", expires_at=1
    )
    assert "VERIFIER" not in repr(pending)


async def test_the_memory_state_store_is_single_use() -> None:
    store = MemoryStateStore()
    pending = PendingAuthorization(
        installation_id="i", redirect_uri="https://g/cb", code_verifier="v", expires_at=NOW + 600
    )
    await store.save("k", pending, now=NOW)
    assert await store.consume("k", now=NOW) == ConsumedState(pending=pending, first_use=True)
    assert await store.consume("k", now=NOW) == ConsumedState(pending=pending, first_use=False)
    assert await store.consume("other", now=NOW) is None
    await store.save("later", pending, now=NOW + 600 + 3601)  # long expired records are dropped
    assert await store.consume("k", now=NOW + 600 + 3601) is None


class RecordingStates(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[str, PendingAuthorization]] = []

    async def save(self, key: str, pending: PendingAuthorization, *, now: float) -> None:
        self.saved.append((key, pending))
        await super().save(key, pending, now=now)


OAUTH2 = {
    "client_id": "$Client ID$",
    "client_secret": "$Client Secret$",
    "flow_type": {"default": "0"},
    "authorization_endpoint": "https://$Host$/oauth/authorize?tenant=acme",
    "authorization_parameters": {"default": "scope=sms%20offline&audience=$Audience$"},
    "token_endpoint": "https://$Host$/oauth/token",
}
PROPERTIES: Mapping[str, Value] = {
    "Client ID": "client id/1",
    "Client Secret": "cs",
    "Host": "login.example.com",
    "Audience": "a&b=c",
}


def oauth_tokens(states: MemoryStateStore | None = None) -> OAuthTokens:
    # No token request is made in these tests; the transport would refuse every connection.
    transport = httpx.MockTransport(lambda request: httpx.Response(599))
    return OAuthTokens(
        vault=MemoryTokenVault(), transport=transport, states=states, clock=lambda: NOW
    )


async def test_the_authorization_url_renders_templates_without_changing_its_structure() -> None:
    states = RecordingStates()
    loaded = definition(
        properties=["Client ID", "Client Secret", "Host", "Audience"], OAuth2=OAUTH2
    )
    url, state = await oauth_tokens(states).begin_authorization(
        "inst", loaded, PROPERTIES, "https://gw.example/oauth/callback"
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "login.example.com",
        "/oauth/authorize",
    )
    query = parse_qs(parts.query)
    assert query["tenant"] == ["acme"]
    assert query["scope"] == ["sms offline"]
    assert query["audience"] == ["a&b=c"]  # a value stays one query value
    assert query["client_id"] == ["client id/1"]
    assert query["state"] == [state]
    ((key, pending),) = states.saved
    assert key == state_key(state) != state  # stored under its digest, not as it is
    assert pending.installation_id == "inst"
    assert pending.expires_at == NOW + 600
    assert pending.redirect_uri == "https://gw.example/oauth/callback"


async def test_a_host_value_that_would_change_the_url_is_refused() -> None:
    loaded = definition(
        properties=["Client ID", "Client Secret", "Host", "Audience"], OAuth2=OAUTH2
    )
    with pytest.raises(InvalidOAuthSetup, match="/OAuth2/authorization_endpoint"):
        await oauth_tokens().begin_authorization(
            "inst", loaded, {**PROPERTIES, "Host": "evil.example/x?"}, "https://gw/cb"
        )


async def test_definitions_without_the_web_server_flow_cannot_begin_an_authorization() -> None:
    with pytest.raises(InvalidOAuthSetup, match="does not use OAuth2"):
        await oauth_tokens().begin_authorization("i", definition(), {}, "https://gw/cb")
    with pytest.raises(InvalidOAuthSetup, match="does not use OAuth2"):
        await oauth_tokens().bearer_token("i", definition(), {})


# -- the transport --------------------------------------------------------------------------


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        seen.append({**request.headers, "body": (await request.read()).decode()})
        if request.path == "/slow":
            await release.wait()
        body = gzip.compress(json.dumps({"ok": True, "path": request.path_qs}).encode())
        return web.Response(
            body=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        release.set()
        await runner.cleanup()


async def test_outbound_transport_carries_httpx_requests_through_the_outbound_client(
    echo: tuple[str, list[dict[str, str]]],
) -> None:
    base, seen = echo
    async with (
        OutboundClient(policy=OutboundPolicy.from_strings(allow=["127.0.0.1"])) as outbound,
        httpx.AsyncClient(transport=OutboundTransport(outbound), timeout=5) as client,
    ):
        answer = await client.post(f"{base}/token?a=1", data={"x": "y z"}, headers={"X-Test": "1"})
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "path": "/token?a=1"}  # decoded once, by aiohttp
    (request,) = seen
    assert request["body"] == "x=y+z"
    assert request["X-Test"] == "1"
    assert request["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["User-Agent"] == "msgbridge"  # the outbound client's, not httpx's


async def test_outbound_transport_keeps_the_policy_and_the_timeout(
    echo: tuple[str, list[dict[str, str]]],
) -> None:
    base, seen = echo
    async with (
        OutboundClient(policy=OutboundPolicy()) as strict,
        httpx.AsyncClient(transport=OutboundTransport(strict)) as client,
    ):
        with pytest.raises(PolicyRefused):
            await client.get(f"{base}/token")
    assert seen == []
    async with (
        OutboundClient(policy=OutboundPolicy.from_strings(allow=["127.0.0.1"])) as outbound,
        httpx.AsyncClient(transport=OutboundTransport(outbound), timeout=0.2) as client,
    ):
        with pytest.raises(OutboundTimeout):
            await client.get(f"{base}/slow")
