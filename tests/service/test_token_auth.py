"""(ext) A Token auth through the running service (docs/format.md, "Tokens from a request"): the
fake provider plays both the token endpoint and the API; every call goes over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from server.demo import Answer, ReceivedRequest, RunningFakeProvider
from tests.service.conftest import (
    TEST_DATABASE,
    GatewayFactory,
    _create_database,
    _database_url,
    _drop_database,
    rpc_details,
)

APP_SECRET = "app-secret-7f3c"
PROPERTIES = {"App ID": "wx-app-1", "App secret": APP_SECRET}
QUERY_USE = {"query": {"access_token": "$token$"}}
HEADER_USE = {"headers": {"Authorization": "Bearer $token$"}}


def _definition(provider: RunningFakeProvider, use: dict[str, Any]) -> str:
    return json.dumps(
        {
            "id": "token-provider",
            "name": "Token provider",
            "class": "sms",
            "properties": [{"name": "App ID", "secret": False}, "App secret"],
            "auth": {
                "type": "Token",
                "request": {
                    "request_method": "GET",
                    "request_url": f"{provider.url}/cgi-bin/token",
                    "request_parameters": {
                        "grant_type": "client_credential",
                        "appid": "$App ID$",
                        "secret": "$App secret$",
                    },
                    "response_map": {
                        "access_token": "$token$",
                        "expires_in": "$expires_in$",
                        "errmsg": "$error$",
                    },
                },
                "use": use,
            },
            "API": {
                "SendMessage": {
                    "request_method": "POST",
                    "request_url": f"{provider.url}/messages",
                    "request_parameters": {"touser": "$to$", "text": {"content": "$content$"}},
                    "response_map": {"data": {"id": "$messageid$"}},
                }
            },
        }
    )


def _token(value: str, expires_in: int = 7200) -> Answer:
    return Answer(json={"access_token": value, "expires_in": expires_in})


async def _gateway(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, use: dict[str, Any]
) -> Any:
    gateway = await start_gateway()
    await gateway.register(_definition(provider, use))
    await gateway.enable("token-provider", properties=PROPERTIES)
    return gateway


def _carried(request: ReceivedRequest) -> str | None:
    """The token a call carried: its access_token query parameter or its bearer header."""
    query = dict(request.query)
    if "access_token" in query:
        return query["access_token"]
    header = request.header("Authorization")
    return header.removeprefix("Bearer ") if header else None


def _tokens_requested(provider: RunningFakeProvider) -> list[ReceivedRequest]:
    return provider.state.requests_to("/cgi-bin/token")


def _sent(provider: RunningFakeProvider) -> list[str | None]:
    return [_carried(r) for r in provider.state.requests_to("/messages")]


@pytest.mark.parametrize("use", [QUERY_USE, HEADER_USE], ids=["query", "header"])
async def test_the_first_send_obtains_a_token_and_the_next_reuses_it(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, use: dict[str, Any]
) -> None:
    provider.state.script("/cgi-bin/token", _token("tok-1"))
    gateway = await _gateway(start_gateway, provider, use)

    first = await gateway.send()
    second = await gateway.send()

    assert first.provider_status == second.provider_status == 200
    requested = _tokens_requested(provider)
    assert len(requested) == 1
    assert dict(requested[0].query) == {
        "grant_type": "client_credential",
        "appid": "wx-app-1",
        "secret": APP_SECRET,
    }
    assert _sent(provider) == ["tok-1", "tok-1"]
    calls = provider.state.requests_to("/messages")
    if use is QUERY_USE:
        assert all(r.header("Authorization") is None for r in calls)
    else:
        assert all(dict(r.query) == {} for r in calls)


async def test_a_token_about_to_expire_is_renewed_before_the_send(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    # 30 s of life is inside the renewal leeway (a minute): the next send renews it.
    provider.state.script("/cgi-bin/token", _token("tok-1", 30), _token("tok-2"))
    gateway = await _gateway(start_gateway, provider, QUERY_USE)

    for _ in range(3):
        await gateway.send()

    assert len(_tokens_requested(provider)) == 2
    assert _sent(provider) == ["tok-1", "tok-2", "tok-2"]


async def test_a_token_kept_in_the_store_survives_a_restart(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    provider.state.script("/cgi-bin/token", _token("tok-1"), _token("tok-2"))
    first = await _gateway(start_gateway, provider, QUERY_USE)
    await first.send()
    await first.channel.close()
    await first.server.stop(0)

    again = await start_gateway()
    await again.send()

    assert len(_tokens_requested(provider)) == 1
    assert _sent(provider) == ["tok-1", "tok-1"]


async def test_a_401_renews_the_token_once_and_sends_again(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    provider.state.script("/cgi-bin/token", _token("tok-1"), _token("tok-2"), _token("tok-3"))
    provider.state.script(
        "/messages", Answer(status=401, json={"error": "token expired"}), Answer()
    )
    gateway = await _gateway(start_gateway, provider, HEADER_USE)

    reply = await gateway.send()

    assert reply.provider_status == 200
    assert _sent(provider) == ["tok-1", "tok-2"]
    assert len(_tokens_requested(provider)) == 2

    # A provider that keeps answering 401: one renewal, then the send fails with its answer.
    provider.state.script("/messages", Answer(status=401, json={"error": "no"}))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gateway.send()
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(_tokens_requested(provider)) == 3
    assert _sent(provider)[2:] == ["tok-2", "tok-3"]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_failing_token_endpoint_is_unavailable_and_nothing_is_sent(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, status: int
) -> None:
    provider.state.script("/cgi-bin/token", Answer(status=status, json={"errmsg": "busy"}))
    gateway = await _gateway(start_gateway, provider, QUERY_USE)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gateway.send()

    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    info = rpc_details(failed.value)["error_info"]
    assert info.reason == "TOKEN_REQUEST_UNAVAILABLE"
    assert info.metadata["integration"] == "token-provider"
    assert f"HTTP {status}" in (failed.value.details() or "")
    assert provider.state.requests_to("/messages") == []


async def test_an_unreachable_token_endpoint_is_unavailable(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    provider.state.script("/cgi-bin/token", Answer(close=True))
    gateway = await _gateway(start_gateway, provider, QUERY_USE)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gateway.send()

    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert rpc_details(failed.value)["error_info"].reason == "TOKEN_REQUEST_UNAVAILABLE"
    assert provider.state.requests_to("/messages") == []


@pytest.mark.parametrize(
    "answer",
    [
        Answer(json={"errcode": 40013, "errmsg": f"invalid appsecret {APP_SECRET}"}),
        Answer(status=403, json={"errmsg": f"invalid appsecret {APP_SECRET}"}),
    ],
    ids=["200-with-an-error", "403"],
)
async def test_a_refused_token_request_fails_the_send_with_the_reason_masked(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, answer: Answer
) -> None:
    provider.state.script("/cgi-bin/token", answer)
    gateway = await _gateway(start_gateway, provider, QUERY_USE)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gateway.send()

    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(failed.value)["error_info"].reason == "TOKEN_REQUEST_REFUSED"
    details = failed.value.details() or ""
    assert APP_SECRET not in details
    if answer.status == 200:
        assert "invalid appsecret ***" in details
    else:
        assert "HTTP 403" in details
    assert provider.state.requests_to("/messages") == []


async def test_the_token_is_never_in_clear_in_the_store_or_the_logs(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "tok-secret-5d1e9a"
    provider.state.script("/cgi-bin/token", _token(token))
    # The provider echoes the token in a refusal: the error shows it masked.
    provider.state.script("/messages", Answer(status=400, json={"error": f"bad {token}"}))
    gateway = await _gateway(start_gateway, provider, QUERY_USE)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send()

    assert _sent(provider) == [token]
    assert token not in (refused.value.details() or "")
    files = [p for p in (tmp_path / "data").iterdir() if p.is_file()]
    if TEST_DATABASE == "sqlite":
        assert any(p.name.startswith("msgbridge") for p in files)
    for path in files:
        content = path.read_bytes()
        for secret in (token, APP_SECRET):
            assert secret.encode() not in content, f"a secret in clear in {path.name}"
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("server", "client", "msgbridge")]
    assert any("new token" in r.getMessage() for r in ours)
    logged = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in ours)
    assert token not in logged
    assert APP_SECRET not in logged


async def test_subscribe_carries_the_token_too(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    provider.state.script("/cgi-bin/token", _token("tok-1"))
    document = json.loads(_definition(provider, QUERY_USE))
    document["Subscribe"] = {
        "request_method": "POST",
        "request_url": f"{provider.url}/webhooks",
        "request_parameters": {"url": "$webhook_url$"},
    }
    gateway = await start_gateway()
    await gateway.register(json.dumps(document))
    await gateway.enable("token-provider", properties=PROPERTIES)

    async with asyncio.timeout(30):  # a bound on a failure, not a figure the test checks
        await provider.state.wait_for_requests(1, path="/webhooks")

    (subscribed,) = provider.state.requests_to("/webhooks")
    assert _carried(subscribed) == "tok-1"
    assert len(_tokens_requested(provider)) == 1


@pytest.fixture
async def shared_database() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, for two replicas (dropped after them: this
    fixture comes before ``start_gateway`` in the test's arguments)."""
    name = await _create_database()
    try:
        yield _database_url(name)
    finally:
        await _drop_database(name)


async def test_replicas_renew_the_token_once_between_them(
    shared_database: str, start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    # The token request takes a while: both replicas need a token while it is under way.
    provider.state.script(
        "/cgi-bin/token", Answer(json={"access_token": "tok-1", "expires_in": 7200}, delay_s=0.5)
    )
    a = await start_gateway(database_url=shared_database)
    b = await start_gateway(database_url=shared_database)
    await a.register(_definition(provider, HEADER_USE))
    await a.enable("token-provider", properties=PROPERTIES)

    replies = await asyncio.gather(a.send(), b.send(), a.send(), b.send())

    assert all(r.provider_status == 200 for r in replies)
    assert len(_tokens_requested(provider)) == 1
    assert _sent(provider) == ["tok-1"] * 4
