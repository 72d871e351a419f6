"""OAuth2 through the running service: BeginAuthorization, the admin's consent, the provider's
redirect to the real sidecar's /oauth/callback, then sends that carry the access token — and no
secret in clear in the SQLite files or the logs."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import grpc
import pytest
from _authorization_server import RunningAuthorizationServer, start_authorization_server
from _oauth_setup import CLIENT_ID, CLIENT_SECRET

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, start_fake_provider
from tests.service.conftest import (
    TEST_DATABASE,
    Gateway,
    GatewayFactory,
    rpc_details,
    start_gateway,
)

__all__ = ["start_gateway"]  # the fixture, shared with the service tests

A = gateway_pb2.Authorization


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _definition(auth_host: str) -> str:
    return json.dumps(
        {
            "id": "oauth-provider",
            "name": "OAuth provider",
            "class": "sms",
            "properties": ["Client ID", "Client Secret", {"name": "Auth Host", "secret": False}],
            "OAuth2": {
                "client_id": "$Client ID$",
                "client_secret": "$Client Secret$",
                "flow_type": {"default": "0"},
                "authorization_endpoint": "http://$Auth Host$/authorize",
                "authorization_parameters": {"default": "scope=api%20refresh_token"},
                "token_endpoint": "http://$Auth Host$/token",
                "token_parameters": {"content_type": "application/x-www-form-urlencoded"},
                "request_auth": "Bearer",
            },
            "API": {
                "SendMessage": {
                    "request_method": "GET",
                    "request_url": "http://$Auth Host$/api",
                    "request_parameters": {"to": "$to$", "content": "$content$"},
                    "response_map": {"id": "$messageid$"},
                }
            },
        }
    )


@pytest.fixture
async def authorization_server() -> RunningAuthorizationServer:
    running = await start_authorization_server()
    yield running  # type: ignore[misc]
    await running.runner.cleanup()


async def test_authorization_code_flow_through_the_sidecar_callback(
    start_gateway: GatewayFactory,
    authorization_server: RunningAuthorizationServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    http_port = _free_port()
    public = f"http://127.0.0.1:{http_port}"
    gateway: Gateway = await start_gateway(
        sidecar=True,
        http_listen=f"127.0.0.1:{http_port}",
        public_url=public,
        data_dir=tmp_path / "data",
    )
    authorization_server.server.add_client(CLIENT_ID, CLIENT_SECRET, f"{public}/oauth/callback")
    await gateway.register(_definition(f"127.0.0.1:{authorization_server.port}"))
    installation = await gateway.enable(
        "oauth-provider",
        properties={
            "Client ID": CLIENT_ID,
            "Client Secret": CLIENT_SECRET,
            "Auth Host": f"127.0.0.1:{authorization_server.port}",
        },
    )
    assert installation.authorization.state == A.UNAUTHORIZED
    with pytest.raises(grpc.aio.AioRpcError) as not_yet:
        await gateway.send()
    assert not_yet.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(not_yet.value)["error_info"].reason == "OAUTH_REAUTHORIZATION_REQUIRED"

    begun = await gateway.stub.BeginAuthorization(
        gateway_pb2.BeginAuthorizationRequest(installation_id=installation.id)
    )
    assert begun.redirect_uri == f"{public}/oauth/callback"
    async with aiohttp.ClientSession() as browser:
        async with browser.get(begun.authorization_url) as page:
            assert page.status == 200
        async with browser.post(
            begun.authorization_url, data={"confirm": "yes"}, allow_redirects=False
        ) as consent:
            assert consent.status == 302
            callback = consent.headers["Location"]
        assert callback.startswith(f"{public}/oauth/callback?")
        async with browser.get(callback) as done:
            assert done.status == 200, await done.text()
            assert "Authorized" in await done.text()
        # The state is single use: the same callback again is refused.
        async with browser.get(callback) as replay:
            assert replay.status == 400
    code = parse_qs(urlsplit(callback).query)["code"][0]

    got = await gateway.stub.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    )
    assert got.authorization.state == A.AUTHORIZED
    reply = await gateway.send()
    assert reply.provider_status == 200
    access_tokens = list(authorization_server.server.access_tokens)
    assert access_tokens

    # No secret in clear: not in the SQLite files, not in any log record.
    secrets = [CLIENT_SECRET, code, *access_tokens, installation.webhook_url.rsplit("/", 1)[1]]
    secrets += list(authorization_server.server.refresh_tokens)
    files = [p for p in (tmp_path / "data").iterdir() if p.is_file()]
    if TEST_DATABASE == "sqlite":
        assert any(p.name.startswith("msgbridge") for p in files)
    for path in files:
        if path.name == "secret.key":
            continue
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"a secret in clear in {path.name}"
    # Our own loggers (the test's authorization server logs what it pleases).
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("server", "client", "msgbridge")]
    assert ours
    logged = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in ours)
    for secret in secrets:
        assert secret not in logged


async def test_a_send_answered_401_renews_the_token_once_and_is_sent_again(
    start_gateway: GatewayFactory,
    authorization_server: RunningAuthorizationServer,
    tmp_path: Path,
) -> None:
    http_port = _free_port()
    public = f"http://127.0.0.1:{http_port}"
    gateway: Gateway = await start_gateway(
        sidecar=True, http_listen=f"127.0.0.1:{http_port}", public_url=public
    )
    authorization_server.server.add_client(CLIENT_ID, CLIENT_SECRET, f"{public}/oauth/callback")
    await gateway.register(_definition(f"127.0.0.1:{authorization_server.port}"))
    installation = await gateway.enable(
        "oauth-provider",
        properties={
            "Client ID": CLIENT_ID,
            "Client Secret": CLIENT_SECRET,
            "Auth Host": f"127.0.0.1:{authorization_server.port}",
        },
    )
    begun = await gateway.stub.BeginAuthorization(
        gateway_pb2.BeginAuthorizationRequest(installation_id=installation.id)
    )
    async with aiohttp.ClientSession() as browser:
        async with browser.post(
            begun.authorization_url, data={"confirm": "yes"}, allow_redirects=False
        ) as consent:
            callback = consent.headers["Location"]
        async with browser.get(callback) as done:
            assert done.status == 200
    await gateway.send()
    refreshes = len(authorization_server.server.requests_of("refresh_token"))

    # The provider stops taking the access token (still unexpired by its own account).
    authorization_server.server.revoke_access_tokens()
    reply = await gateway.send()
    assert reply.provider_status == 200
    assert len(authorization_server.server.requests_of("refresh_token")) == refreshes + 1

    # A revoked refresh token cannot be renewed: the installation is marked, sends are refused.
    authorization_server.server.revoke_access_tokens()
    authorization_server.server.revoke_refresh_tokens()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = await gateway.stub.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    )
    assert got.authorization.state == A.ERROR
    assert got.authorization.error


async def test_a_stand_in_serves_the_authorization_the_code_exchange_and_the_sends(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """docs/format.md, "Proving a definition": with ``--provider-stand-in`` the definition's own
    hosts (which do not resolve here) are never asked; the fake provider plays the provider."""
    http_port = _free_port()
    public = f"http://127.0.0.1:{http_port}"
    async with await start_fake_provider() as fake:
        gateway: Gateway = await start_gateway(
            sidecar=True,
            http_listen=f"127.0.0.1:{http_port}",
            public_url=public,
            provider_stand_in=(f"oauth-provider={fake.url}",),
        )
        await gateway.register(_definition("auth.provider.invalid"))
        installation = await gateway.enable(
            "oauth-provider",
            properties={
                "Client ID": CLIENT_ID,
                "Client Secret": CLIENT_SECRET,
                "Auth Host": "auth.provider.invalid",
            },
        )
        begun = await gateway.stub.BeginAuthorization(
            gateway_pb2.BeginAuthorizationRequest(installation_id=installation.id)
        )
        assert begun.authorization_url.startswith(f"{fake.url}/authorize?")
        token = {"access_token": "stand-in-token", "token_type": "Bearer", "expires_in": 3600}
        fake.state.script("/token", Answer(json={**token, "refresh_token": "r-1"}))
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(begun.authorization_url) as done,  # the fake redirects to the callback
        ):
            assert done.status == 200, await done.text()
            assert "Authorized" in await done.text()
        got = await gateway.stub.GetInstallation(
            gateway_pb2.GetInstallationRequest(installation_id=installation.id)
        )
        assert got.authorization.state == A.AUTHORIZED
        (exchange,) = fake.state.requests_to("/token")
        assert dict(exchange.form or ())["grant_type"] == "authorization_code"

        fake.state.script("/api", Answer(json={"id": "m-1"}))
        reply = await gateway.send()
        assert reply.provider_message_id == "m-1"
        (sent,) = fake.state.requests_to("/api")
        assert sent.header("Authorization") == "Bearer stand-in-token"
