"""The API from a Node.js client (issue 19): ``tests/node/client.mjs`` — @grpc/grpc-js and
@grpc/proto-loader loading ``protos/`` as shipped, google.rpc details decoded from the
``google/rpc`` copies beside it — against a real ``msgbridge serve --demo``. ``make install``
installs the Node.js packages (``npm ci``, versions from package-lock.json)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_process import (
    ROOT,
    Service,
    _drop_databases,  # noqa: F401  (the fixture that drops start_service's PostgreSQL databases)
    start_service,
    stop_service,
)

pytestmark = pytest.mark.e2e

CLIENT = ROOT / "tests" / "node" / "client.mjs"


async def _node_client(service: Service) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (the README's Development section)"
    assert (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run `make install` (npm ci)"
    process = await asyncio.create_subprocess_exec(
        node, str(CLIENT), str(service.grpc_port), str(service.http_port),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def _fake_provider_url(service: Service) -> str:
    for line in service.log:
        if "demo: fake provider" in line:
            return str(json.loads(line)["url"])
    raise AssertionError("no demo line in the log")


async def _provider_requests(url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_fake/requests?path=/messages") as answer,
    ):
        assert answer.status == 200
        body: dict[str, Any] = await answer.json()
    return list(body["requests"])


async def test_a_node_client_enables_sends_streams_and_reads_error_details(
    tmp_path: Path,
) -> None:
    service = await start_service(
        tmp_path / "data", "--demo", "--demo-provider-listen", "127.0.0.1:0"
    )
    try:
        result = await _node_client(service)
        received = await _provider_requests(_fake_provider_url(service))
    finally:
        assert await stop_service(service) == 0

    assert result["integrations"] == [{"id": "demo", "version": "1"}]

    installation = result["installation"]
    assert installation["org_id"] == "acme"
    assert installation["integration_id"] == "demo"
    assert installation["enabled"] is True
    assert installation["numbers"] == ["+15550001111"]
    assert {"name": "API key", "value": "", "set": True} in installation["properties"]
    assert "/webhooks/demo/" in installation["webhook_url"]

    # The send reached the provider, as the definition renders it, with the Node.js text.
    send = result["send"]
    assert send["state"] == "SENT"
    assert send["provider_status"] == 200
    assert send["installation_id"] == installation["id"]
    assert (send["encoding"], send["segments"]) == ("UCS-2", 1)
    (request,) = received
    assert request["answer_id"] == send["provider_message_id"]
    assert ["Authorization", "Bearer node-secret"] in request["headers"]
    assert request["json"]["from"] == "+15550001111"
    assert request["json"]["content"] == "Hello from Node.js 👋"

    # The inbound message posted to the sidecar came back on StreamEvents.
    assert result["webhook_status"] == 200
    event = result["event"]
    assert event["type"] == "MESSAGE"
    assert (event["from"], event["to"]) == ("+15557654321", "+15550001111")
    assert event["text"] == "Hi back from Node.js"
    assert event["users"] == ["101", "102"]
    assert event["installation_id"] == installation["id"]
    assert int(event["cursor"]) > 0

    errors = result["errors"]
    assert "from number" in errors["not_our_number"].pop("message")
    assert errors["not_our_number"] == {
        "code": "PERMISSION_DENIED",
        "status_code": 7,
        "details": [
            {
                "type": "google.rpc.ErrorInfo",
                "reason": "NUMBER_NOT_ASSIGNED",
                "domain": "msgbridge",
                "metadata": {"org": "acme", "from": "+15559999999"},
            }
        ],
    }
    bad = errors["bad_definition"]
    assert (bad["code"], bad["status_code"]) == ("INVALID_ARGUMENT", 3)
    info, bad_request = bad["details"]
    assert (info["type"], info["reason"]) == ("google.rpc.ErrorInfo", "INVALID_DEFINITION")
    assert bad_request["type"] == "google.rpc.BadRequest"
    descriptions = [v["description"] for v in bad_request["field_violations"]]
    assert any('"class"' in d for d in descriptions), descriptions
    assert any('"API"' in d for d in descriptions), descriptions

    assert result["scheduled"] == "QUEUED"
    full = errors["queue_full"]
    assert (full["code"], full["status_code"]) == ("RESOURCE_EXHAUSTED", 8)
    assert [d["type"] for d in full["details"]] == ["google.rpc.ErrorInfo", "google.rpc.RetryInfo"]
    assert full["details"][0]["reason"] == "QUEUE_FULL"
    assert full["details"][1]["retry_delay"] == {"seconds": "1"}

    assert not any("node-secret" in line for line in service.log)
