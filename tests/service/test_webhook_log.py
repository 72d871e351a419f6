"""Webhook requests kept as the provider exchange log keeps a call (docs/operations.md, "Webhook
requests"): each request, of every outcome — matched, refused by its WebhookAuth, unparseable —
is listed by ListWebhooks with its masked headers, what the gateway answered and how long that
took, and no secret it carried (the token header, Basic credentials, a secret property in the
query or the body) is in the reply, the CLI's output, the SQLite files or the logs."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import GatewayFactory
from .test_inbound import SEED_WEBHOOKS, hook_path, http, inbound_definition, post  # noqa: F401
from .test_provider_echo import (  # the fixtures: the CLI's environment unset, logs captured
    BASIC,
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

W = gateway_pb2.UnmatchedWebhook


async def test_every_webhook_request_is_kept_masked_with_its_answer_and_timing(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    data_dir = tmp_path / "data"
    gateway = await start_gateway(data_dir=data_dir, sidecar=True)
    await gateway.register(
        inbound_definition(
            provider.url,
            SEED_WEBHOOKS,
            properties=["API key", "Webhook token", "User"],
            WebhookAuth={"type": "token", "header": "X-Hook-Token", "token": "$Webhook token$"},
        )
    )
    installation = await gateway.enable(
        "acme-sms", properties={"API key": SECRET, "Webhook token": PASSWORD, "User": USER}
    )
    path = hook_path(installation)
    message = {
        "method": "message",
        "params": {"from": "+15550002222", "to": "+15550001111", "content": "hi"},
        "echo": {"key": SECRET},  # a provider echoing a secret in a field no model reads
    }
    secret_headers = {"X-Hook-Token": PASSWORD, "Authorization": f"Basic {BASIC}"}

    status, _ = await post(http, gateway, f"{path}?account={USER}", message, headers=secret_headers)
    assert status == 200
    wrong = {"X-Hook-Token": "not-the-token"}
    assert (await post(http, gateway, path, message, headers=wrong))[0] == 401
    garbled = b'{"method": "message", "params": '
    assert (await post(http, gateway, path, garbled, headers=secret_headers))[0] == 400

    listed = (await gateway.stub.ListWebhooks(gateway_pb2.ListWebhooksRequest())).webhooks
    unparseable, refused, matched = listed
    assert [w.kind for w in listed] == [W.UNMATCHED, W.UNAUTHENTICATED, W.MATCHED]

    assert matched.answer_status == 200
    assert refused.answer_status == 401
    assert refused.answer_body == "the request could not be authenticated"
    assert unparseable.answer_status == 400
    assert unparseable.answer_body.startswith("the body cannot be parsed")
    assert unparseable.reason.startswith("the body cannot be parsed")
    assert unparseable.body == garbled  # kept whole, to be replayed once the cause is fixed
    assert all(w.duration_ms > 0 for w in listed)

    headers = {h.name.lower(): h.value for h in matched.headers}
    assert headers["x-hook-token"] == "***"
    assert headers["authorization"] == "***"
    assert headers["content-type"] == "application/json"
    assert {h.name.lower(): h.value for h in refused.headers}["x-hook-token"] == "***"
    assert matched.query == "account=***"
    kept_body = json.loads(matched.body)
    assert kept_body["echo"] == {"key": "***"}
    assert kept_body["params"]["content"] == "hi"  # only the secret's own bytes change

    replayed = await gateway.stub.ReplayWebhook(gateway_pb2.ReplayWebhookRequest(id=unparseable.id))
    assert replayed.reason.startswith("the body cannot be parsed") and not replayed.events

    target = ("--target", f"127.0.0.1:{gateway.port}")
    code, out = await run_cli(capsys, "webhooks", *target)
    assert code == 0
    rows = out.splitlines()
    assert "ANSWER" in rows[0].split()
    answers = [[c for c in row.split() if c in {"200", "400", "401"}] for row in rows[1:]]
    assert answers == [["400"], ["401"], ["200"]]
    code, as_json = await run_cli(capsys, "webhooks", "--json", *target)
    assert code == 0

    for text, where in (
        (str(listed), "ListWebhooks"),
        (out + as_json, "the CLI"),
        (store_bytes(data_dir).decode("latin-1"), "the store's files"),
        (logged(logs), "the logs"),
    ):
        assert_no_secret(text, where)
