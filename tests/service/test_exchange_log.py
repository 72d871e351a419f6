"""The provider exchange log (docs/operations.md, "Provider exchanges"): a send's HTTP exchange
with the provider is returned by GetMessage and shown by `msgbridge message`, with every secret —
the bearer token, secret property values in the URL, the body and the answer — replaced by ``***``
before it is written: none is in GetMessage, the CLI's output, the SQLite files or the logs."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ._delivery import fast_gateway
from .conftest import TEST_DATABASE, Gateway, GatewayFactory, definition
from .test_provider_echo import (  # the fixtures: the CLI's environment unset, logs captured
    PASSWORD,
    SECRET,
    USER,
    _no_cli_environment,  # noqa: F401
    assert_no_secret,
    logged,
    logs,  # noqa: F401
    run_cli,
    store_bytes,
)
from .test_subscribe_chain import subscription_after


async def gateway_sending_secrets(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, data_dir: Path, **settings: Any
) -> Gateway:
    """A definition that sends the bearer token, a secret property in the URL's query and two
    in the body."""
    gateway: Gateway = await start_gateway(data_dir=data_dir, **settings)
    await gateway.register(
        definition(
            provider.url,
            path="/messages?account=$User$",
            properties=["API key", "User", "Password"],
            parameters={"to": "$to$", "text": "$content$", "user": "$User$", "pw": "$Password$"},
        )
    )
    await gateway.enable(
        "acme-sms", properties={"API key": SECRET, "User": USER, "Password": PASSWORD}
    )
    return gateway


async def test_a_send_is_kept_in_the_exchange_log_with_no_secret_anywhere(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    data_dir = tmp_path / "data"
    gateway = await gateway_sending_secrets(start_gateway, provider, data_dir)
    echoed = {"data": {"id": "P-77"}, "seen": f"Bearer {SECRET}", "user": USER, "pw": PASSWORD}
    provider.state.script(
        "/messages", Answer(json=echoed, headers=(("X-Echo", f"key={SECRET}"), ("X-Kept", "ok")))
    )

    reply = await gateway.send(text="hello exchange")
    seen = provider.state.requests[-1]
    assert dict(seen.headers)["Authorization"] == f"Bearer {SECRET}"  # the provider got them
    assert PASSWORD in json.loads(seen.body)["pw"]

    got = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert len(got.exchanges) == 1
    exchange = got.exchanges[0]
    assert (exchange.kind, exchange.method, exchange.status) == ("send", "POST", 200)
    assert exchange.url == provider.url + "/messages?account=***"
    assert exchange.installation_id == got.installation_id
    assert exchange.duration_ms > 0 and exchange.HasField("started_at")
    request_headers = {h.name: h.value for h in exchange.request_headers}
    assert request_headers["Authorization"] == "***"
    body = json.loads(exchange.request_body)
    assert body == {"to": "+15557654321", "text": "hello exchange", "user": "***", "pw": "***"}
    answer = json.loads(exchange.response_body)
    assert answer == {"data": {"id": "P-77"}, "seen": "Bearer ***", "user": "***", "pw": "***"}
    response_headers = {h.name: h.value for h in exchange.response_headers}
    assert (response_headers["X-Echo"], response_headers["X-Kept"]) == ("key=***", "ok")
    assert_no_secret(str(got), "GetMessage")

    listed = await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest(org_id="org-1"))
    assert [len(m.exchanges) for m in listed.messages] == [0]  # GetMessage's only

    target = ("--target", f"127.0.0.1:{gateway.port}")
    code, out = await run_cli(capsys, "message", reply.message_id, *target)
    assert code == 0
    assert "send " in out and f"POST {provider.url}/messages?account=*** → HTTP 200" in out
    assert "> Authorization: ***" in out and '"pw":"***"' in out and "< X-Kept: ok" in out
    assert_no_secret(out, "msgbridge message")
    code, out = await run_cli(capsys, "message", reply.message_id, "--json", *target)
    assert code == 0 and '"exchanges"' in out
    assert_no_secret(out, "msgbridge message --json")

    if TEST_DATABASE == "sqlite":
        stored = store_bytes(data_dir)  # the database and its -wal, while the service runs
        assert b"hello exchange" in stored and b"P-77" in stored
        assert_no_secret(stored.decode("latin-1"), "the SQLite files")
    assert_no_secret(logged(logs), "the logs")


async def test_a_call_that_got_no_answer_is_kept_with_its_error(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    gateway = await gateway_sending_secrets(
        start_gateway, provider, tmp_path / "data", send_max_attempts=1
    )
    provider.state.script("/messages", Answer(close=True))
    with pytest.raises(grpc.aio.AioRpcError):  # its code is test_send's
        await gateway.send()
    message = (
        await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest(org_id="org-1"))
    ).messages[0]
    got = await gateway.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=message.message_id)
    )
    [exchange] = got.exchanges
    assert exchange.status == 0 and exchange.error and not exchange.response_body
    assert_no_secret(str(got), "GetMessage")


async def test_without_the_exchange_log_nothing_is_kept(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    gateway = await gateway_sending_secrets(
        start_gateway, provider, tmp_path / "data", exchange_log=False
    )
    reply = await gateway.send()
    got = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert got.state == gateway_pb2.Message.SENT and not got.exchanges


async def test_a_subscribe_call_is_kept_masked(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    gateway: Gateway = await start_gateway(data_dir=data_dir)
    doc = json.loads(definition(provider.url, properties=["API key", "User", "Password"]))
    doc["Subscribe"] = [
        {
            "request_method": "POST",
            "request_url": provider.url + "/hooks?key=$API key$",
            "request_parameters": {"url": "$webhook_url$", "user": "$User$"},
        }
    ]
    await gateway.register(json.dumps(doc))
    provider.state.script("/hooks", Answer(status=403, text=f"no, {SECRET}"))
    installation = await gateway.enable(
        "acme-sms", properties={"API key": SECRET, "User": USER, "Password": PASSWORD}
    )
    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.FAILED
    exchanges = gateway.server.exchanges
    assert exchanges is not None
    await exchanges.flush()

    if TEST_DATABASE == "sqlite":
        with contextlib.closing(sqlite3.connect(data_dir / "msgbridge.db")) as db:
            rows = db.execute(
                "SELECT kind, message_id, url, status, request_body, response_body,"
                " request_headers_json FROM provider_exchanges"
            ).fetchall()
        [(kind, message_id, url, status, sent, answered, headers)] = rows
        assert (kind, message_id, status) == ("subscribe", None, 403)
        assert url == provider.url + "/hooks?key=***" and answered == "no, ***"
        assert '"user":"***"' in sent.replace(" ", "") and '["Authorization","***"]' in headers
        assert_no_secret(repr(rows), "the stored Subscribe exchange")
        assert_no_secret(store_bytes(data_dir).decode("latin-1"), "the SQLite files")


async def test_each_attempt_of_a_retried_send_is_kept_in_order(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script(
        "/messages", Answer(status=503, text="busy"), Answer(status=503), Answer()
    )
    reply = await gateway.send()
    assert reply.state == gateway_pb2.Message.SENT
    got = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert [(x.kind, x.status) for x in got.exchanges] == [
        ("send", 503),
        ("retry", 503),
        ("retry", 200),
    ]
    assert got.exchanges[0].response_body == "busy"
    started = [x.started_at.ToDatetime() for x in got.exchanges]
    assert started == sorted(started)


async def test_exchanges_are_purged_after_their_retention(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    gateway = await gateway_sending_secrets(
        start_gateway, provider, tmp_path / "data", exchanges_retention_days=3
    )
    reply = await gateway.send()
    keeper = gateway.server.retention
    exchanges = gateway.server.exchanges
    assert exchanges is not None
    await exchanges.flush()
    soon = await keeper.purge_once(datetime.now(UTC) + timedelta(days=2))
    assert soon.get("exchanges", 0) == 0
    kept = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert len(kept.exchanges) == 1
    later = await keeper.purge_once(datetime.now(UTC) + timedelta(days=4))
    assert later["exchanges"] == 1 and later["messages"] == 0  # the message is kept longer
    got = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    assert got.state == gateway_pb2.Message.SENT and not got.exchanges


async def test_a_token_request_is_kept_with_no_token_or_client_secret(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    access, refresh, client_secret = "AT-access-5150", "RT-refresh-8080", "CS-client-9090"
    doc = json.loads(definition(provider.url, properties=["Client ID", "Client Secret"]))
    del doc["auth"]
    doc["OAuth2"] = {
        "client_id": "$Client ID$",
        "client_secret": "$Client Secret$",
        "flow_type": {"default": "1"},
        "token_endpoint": provider.url + "/token",
        "token_parameters": {"content_type": "application/x-www-form-urlencoded"},
        "request_auth": "Bearer",
    }
    data_dir = tmp_path / "data"
    gateway: Gateway = await start_gateway(data_dir=data_dir)
    await gateway.register(json.dumps(doc))
    installation = await gateway.enable(
        "acme-sms", properties={"Client ID": "client-1", "Client Secret": client_secret}
    )
    token = {"access_token": access, "refresh_token": refresh, "expires_in": 3600}
    provider.state.script("/token", Answer(json=token))
    reply = await gateway.send()
    assert dict(provider.state.requests[-1].headers)["Authorization"] == f"Bearer {access}"

    got = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=reply.message_id))
    [sent] = got.exchanges
    assert {h.name: h.value for h in sent.request_headers}["Authorization"] == "***"
    stored = await gateway.server.store.list_exchanges(reply.message_id)
    assert [x.kind for x in stored] == ["send"]
    secrets = (access, refresh, client_secret)
    if TEST_DATABASE == "sqlite":
        with contextlib.closing(sqlite3.connect(data_dir / "msgbridge.db")) as db:
            rows = db.execute(
                "SELECT installation_id, message_id, method, url, status, request_headers_json,"
                " request_body, response_body FROM provider_exchanges WHERE kind = 'oauth_token'"
            ).fetchall()
        [(owner, message_id, method, url, status, headers, body, answer)] = rows
        assert (owner, message_id, method, status) == (installation.id, None, "POST", 200)
        assert url == provider.url + "/token"
        assert "grant_type=client_credentials" in body and '["Authorization","***"]' in headers
        assert json.loads(answer) == {**token, "access_token": "***", "refresh_token": "***"}
        everything = store_bytes(data_dir).decode("latin-1")
        assert not [s for s in secrets if s in repr(rows) or s in everything]
    assert not [s for s in secrets if s in logged(logs)]
