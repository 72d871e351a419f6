"""A provider that echoes what it was sent: its answer reaches the caller, the store and the CLI
only with the installation's secrets masked (docs/format.md, "Authentication").

The fake provider answers 400 quoting our Authorization header, a secret property percent- and
JSON-encoded, the Basic credentials' base64, and a secret cut by the excerpt's limit; then the
secret is looked for in the gRPC error (message and details), GetMessage, the stored idempotent
reply, the SQLite files' bytes, the log records and the output of `msgbridge send` and
`msgbridge message`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest

from client.cli import main
from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import TEST_DATABASE, Gateway, GatewayFactory, definition, rpc_details
from .test_subscribe_chain import subscription_after

SECRET = "SECRETVALUE-XYZ-123"
USER, PASSWORD = "AC-account-77", "pass/word+88"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
# Text of each secret that must not be found anywhere (a piece of each is enough to give it away).
NEEDLES = (
    "SECRETVALUE",
    "XYZ-123",
    "XYZ%2D123",
    "pass/word",
    "word%2B88",
    BASIC[:12],
    "AC-account",
)


def echo(*, padding: int = 0) -> str:
    """A 400 body quoting what the gateway sent, in the forms a provider may use."""
    return (
        "x" * padding
        + f" invalid header 'Authorization: Bearer {SECRET}';"
        + f" form key={quote(SECRET, safe='')}&pw={quote(PASSWORD, safe='')};"
        + " json "
        + json.dumps({"key": SECRET, "user": USER, "password": PASSWORD})
    )


def assert_no_secret(text: str, where: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, f"{needle!r} in {where}: {text!r}"


def error_text(error: grpc.aio.AioRpcError) -> str:
    """Everything a client receives with a failed call: message, details and trailers."""
    trailers = error.trailing_metadata() or ()
    raw = b"".join(v if isinstance(v, bytes) else v.encode() for _, v in trailers)
    details = rpc_details(error)
    info = details["error_info"]
    return "\n".join(
        [str(error.details()), str(dict(info.metadata)), raw.decode("utf-8", "replace")]
    )


@pytest.fixture(autouse=True)
def _no_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSGBRIDGE_TARGET", raising=False)
    monkeypatch.delenv("MSGBRIDGE_TOKEN", raising=False)


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``msgbridge …`` (client.cli.main) in a thread, so that the service keeps answering."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def store_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.name != "secret.key")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)


async def gateway_with_bearer(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, data_dir: Path, **auth: Any
) -> tuple[Gateway, gateway_pb2.Installation]:
    gateway: Gateway = await start_gateway(data_dir=data_dir)
    await gateway.register(
        definition(
            provider.url,
            properties=["API key", "User", "Password"],
            response_map={"data": {"id": "$messageid$"}, "status": "ok", "why": "$error$"},
            **auth,
        )
    )
    installation = await gateway.enable(
        "acme-sms", properties={"API key": SECRET, "User": USER, "Password": PASSWORD}
    )
    return gateway, installation


async def test_a_provider_echoing_secrets_in_a_400_leaks_none_of_them(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    data_dir = tmp_path / "data"
    gateway, _ = await gateway_with_bearer(start_gateway, provider, data_dir)
    provider.state.script("/messages", Answer(status=400, text=echo()))

    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await gateway.send(idempotency_key="echo-1")
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    seen = dict(provider.state.requests[-1].headers)["Authorization"]
    assert seen == f"Bearer {SECRET}"  # the provider did get the secret it echoes
    info = rpc_details(rejected.value)["error_info"]
    assert info.reason == "PROVIDER_REJECTED"
    excerpt = info.metadata["provider_excerpt"]
    assert "invalid header 'Authorization: Bearer ***'" in excerpt  # still useful, masked
    assert_no_secret(error_text(rejected.value), "the gRPC error")

    # The same key again: the stored reply (an error) comes back as it was stored.
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await gateway.send(idempotency_key="echo-1")
    assert rpc_details(replayed.value)["error_info"].metadata["provider_excerpt"] == excerpt
    assert_no_secret(error_text(replayed.value), "the replayed error")

    message = await gateway.server.store.get_message_by_idempotency_key("org-1", "echo-1")
    assert message is not None
    got = await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=message.id))
    assert got.state == gateway_pb2.Message.FAILED and "HTTP 400" in got.error
    assert_no_secret(str(got), "GetMessage")

    target = ("--target", f"127.0.0.1:{gateway.port}")
    send = ("--org", "org-1", "--from", "+15550001111", "--to", "+15557654321", "--text", "hi")
    code, out = await run_cli(capsys, "send", *send, *target)
    assert code == 1 and "PROVIDER_REJECTED" in out
    assert_no_secret(out, "msgbridge send")
    code, out = await run_cli(capsys, "send", *send, "--json", *target)
    assert code == 1
    assert_no_secret(out, "msgbridge send --json")
    for flags in ((), ("--json",)):
        code, out = await run_cli(capsys, "message", message.id, *flags, *target)
        assert code == 0 and "HTTP 400" in out
        assert_no_secret(out, "msgbridge message")

    if TEST_DATABASE == "sqlite":
        stored = store_bytes(data_dir)  # the database and its -wal, while the service runs
        assert b"HTTP 400" in stored
        assert_no_secret(stored.decode("latin-1"), "the SQLite files")
    assert_no_secret(logged(logs), "the logs")


async def test_a_secret_cut_by_the_excerpt_limit_leaves_no_piece_behind(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    gateway, _ = await gateway_with_bearer(start_gateway, provider, tmp_path / "data")
    for padding in range(255, 300, 3):  # the secret straddles the 300th character
        provider.state.script("/messages", Answer(status=400, text=echo(padding=padding)))
        with pytest.raises(grpc.aio.AioRpcError) as rejected:
            await gateway.send()
        text = error_text(rejected.value)
        assert "SECRE" not in text and "XYZ" not in text, (padding, text)


async def test_basic_credentials_echoed_as_base64_are_masked(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    basic = {"type": "Basic", "username": "$User$", "password": "$Password$"}
    gateway, _ = await gateway_with_bearer(start_gateway, provider, tmp_path / "data", auth=basic)
    provider.state.script("/messages", Answer(status=401, text=f"bad header Basic {BASIC}"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send()
    assert dict(provider.state.requests[-1].headers)["Authorization"] == f"Basic {BASIC}"
    info = rpc_details(refused.value)["error_info"]
    assert info.metadata["provider_excerpt"] == "bad header Basic ***"
    assert_no_secret(error_text(refused.value), "the gRPC error")


async def test_a_refusal_whose_error_capture_echoes_a_secret_is_masked(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    gateway, _ = await gateway_with_bearer(start_gateway, provider, tmp_path / "data")
    answer = {"data": {"id": "m1"}, "status": "refused", "why": f"key {SECRET} is disabled"}
    provider.state.script("/messages", Answer(status=200, json=answer))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send()
    assert rpc_details(refused.value)["error_info"].reason == "PROVIDER_REFUSED"
    assert "key *** is disabled" in str(refused.value.details())
    assert_no_secret(error_text(refused.value), "the gRPC error")


async def test_a_subscribe_error_echoing_a_secret_is_stored_masked(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    gateway: Gateway = await start_gateway(data_dir=tmp_path / "data")
    doc = json.loads(definition(provider.url, properties=["API key", "User", "Password"]))
    doc["Subscribe"] = [
        {
            "request_method": "POST",
            "request_url": provider.url + "/hooks?key=$API key$",
            "request_parameters": {"url": "$webhook_url$"},
        }
    ]
    await gateway.register(json.dumps(doc))
    provider.state.script("/hooks", Answer(status=403, text=echo()))
    installation = await gateway.enable(
        "acme-sms", properties={"API key": SECRET, "User": USER, "Password": PASSWORD}
    )

    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.FAILED
    assert "answered HTTP 403" in subscription.last_error
    assert "Bearer ***" in subscription.last_error
    assert_no_secret(subscription.last_error, "the subscription's last error")


async def test_oauth2_tokens_and_client_secret_echoed_by_the_provider_are_masked(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
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
    gateway: Gateway = await start_gateway(data_dir=tmp_path / "data")
    await gateway.register(json.dumps(doc))
    await gateway.enable(
        "acme-sms", properties={"Client ID": "client-1", "Client Secret": client_secret}
    )
    token = {"access_token": access, "refresh_token": refresh, "expires_in": 3600}
    provider.state.script("/token", Answer(json=token))
    said = f"token {access} (refresh {refresh}) of client client-1:{client_secret} expired"
    provider.state.script("/messages", Answer(status=400, json={"error": said}))

    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await gateway.send()

    assert dict(provider.state.requests[-1].headers)["Authorization"] == f"Bearer {access}"
    text = error_text(rejected.value)
    assert "token *** (refresh ***) of client ***" in text
    for secret in (access, refresh, client_secret):
        assert secret not in text
