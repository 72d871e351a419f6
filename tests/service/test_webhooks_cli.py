"""`msgbridge webhooks` (ListWebhooks): the latest webhook requests of every outcome, newest
first, with their outcome — matched ones too, which ListUnmatchedWebhooks leaves out."""

from __future__ import annotations

import json

import aiohttp
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway
from .test_inbound import SEED_WEBHOOKS, hook_path, http, inbound, inbound_definition, post  # noqa: F401
from .test_provider_echo import _no_cli_environment, run_cli  # noqa: F401


async def test_webhooks_lists_every_outcome_newest_first(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    await inbound.register(inbound_definition(provider.url, SEED_WEBHOOKS))
    installation = await inbound.enable("acme-sms")
    message = {"method": "message", "params": {"from": "+1", "to": "+15550001111", "content": "x"}}
    for body in (message, {"method": "nothing"}, message):
        assert (await post(http, inbound, hook_path(installation), body))[0] == 200

    listed = await inbound.stub.ListWebhooks(gateway_pb2.ListWebhooksRequest())
    kinds = [gateway_pb2.UnmatchedWebhook.Kind.Name(w.kind) for w in listed.webhooks]
    assert kinds == ["MATCHED", "UNMATCHED", "MATCHED"]
    received = [w.received_at.ToDatetime() for w in listed.webhooks]
    assert received == sorted(received, reverse=True)
    unmatched = await inbound.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    assert [w.id for w in unmatched.webhooks] == [listed.webhooks[1].id]

    target = ("--target", f"127.0.0.1:{inbound.port}")
    code, out = await run_cli(capsys, "webhooks", *target)
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["ID", "RECEIVED", "OUTCOME"]
    assert [row.split()[2] for row in rows[1:]] == ["matched", "unmatched", "matched"]
    assert all("/webhooks/acme-sms" in row for row in rows[1:])
    assert installation.webhook_url.rsplit("/", 1)[1] not in out  # the URL's token is not kept

    code, out = await run_cli(capsys, "webhooks", "--limit", "2", "--json", *target)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["kind"] for line in lines] == ["MATCHED", "UNMATCHED"]
    code, out = await run_cli(capsys, "webhooks", "--integration", "other", *target)
    assert code == 0 and len(out.splitlines()) <= 1
