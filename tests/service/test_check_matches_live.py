"""``msgbridge check --match`` says what the live webhook endpoint does with a body: the same
answer (status, content type, body), the same events and the same kept unmatched requests as a
real service and its sidecar over sockets, for the shipped integrations/bulksms.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.cli import main
from msgbridge.v1 import gateway_pb2

from .conftest import Gateway, GatewayFactory

ROOT = Path(__file__).resolve().parents[2]
BULKSMS = ROOT / "integrations" / "bulksms.json"
FIXTURES = ROOT / "tests" / "fixtures" / "providers" / "bulksms"


def _fixture_body(name: str) -> tuple[bytes, dict[str, str]]:
    case = json.loads((FIXTURES / "webhooks" / name).read_text(encoding="utf-8"))
    return json.dumps(case["body"]).encode(), dict(case["headers"])


BODIES = [
    # BulkSMS's validation call when a webhook is created: an empty array (no payload).
    pytest.param(*_fixture_body("validation_empty.json"), id="empty-batch"),
    pytest.param(*_fixture_body("received.json"), id="received-message"),
    pytest.param(b'[{"hello": "world"}]', {}, id="unmatched-element"),
    pytest.param(b"", {}, id="empty-body"),
]


async def _counts(gateway: Gateway) -> tuple[int, int]:
    events = await gateway.stub.ListEvents(gateway_pb2.ListEventsRequest(org_id="org-1"))
    kept = await gateway.stub.ListUnmatchedWebhooks(gateway_pb2.ListUnmatchedWebhooksRequest())
    return len(events.events), len(kept.webhooks)


@pytest.mark.parametrize(("body", "headers"), BODIES)
async def test_check_match_says_what_the_live_endpoint_answers_and_keeps(
    body: bytes,
    headers: dict[str, str],
    start_gateway: GatewayFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_bytes(body)
    argv = ["check", "--match", str(BULKSMS), "--webhook", str(body_file), "--json"]
    argv += ["--content-type", "application/json"]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    code = main(argv)
    checked: dict[str, Any] = json.loads(capsys.readouterr().out)
    live = checked["live"]

    gateway: Gateway = await start_gateway(sidecar=True)
    integration = await gateway.register(BULKSMS.read_text(encoding="utf-8"))  # as shipped
    install = json.loads((FIXTURES / "install.json").read_text(encoding="utf-8"))
    installation = await gateway.enable(
        integration.id,
        numbers=install["numbers"],
        properties=install["properties"],
        region=install["region"],
    )
    before = await _counts(gateway)
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]  # the sidecar's port is known now
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{gateway.server.http_port}{path}",
            data=body,
            headers={"Content-Type": "application/json", **headers},
        ) as answer,
    ):
        answered = (answer.status, answer.headers.get("Content-Type"), await answer.text())
    events, unmatched = await _counts(gateway)

    assert answered == (live["status"], live["content_type"], live["body"])
    assert events - before[0] == live["events"] == len(checked["events"])
    assert (unmatched - before[1] == 1) is live["listed_as_unmatched"]
    assert (code == 1) is live["listed_as_unmatched"]
