"""The real ``msgbridge serve --provider-stand-in`` process: the shipped integrations/bulksms.json,
registered from its own path, sends to the fake provider; the stand-in is announced; a stand-in
the outbound policy does not allow stops the service before it starts (docs/format.md, "Proving
a definition")."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.demo import Answer, RunningFakeProvider, start_fake_provider

from .test_process import ROOT, cli, start_service, stop_service

pytestmark = pytest.mark.e2e

BULKSMS = ROOT / "integrations" / "bulksms.json"
FIXTURES = ROOT / "tests" / "fixtures" / "providers" / "bulksms"


@pytest.fixture
async def stand_in() -> AsyncIterator[RunningFakeProvider]:
    provider = await start_fake_provider()
    yield provider
    await provider.aclose()


async def test_serve_sends_a_shipped_definitions_calls_to_its_stand_in(
    tmp_path: Path, stand_in: RunningFakeProvider
) -> None:
    install = json.loads((FIXTURES / "install.json").read_text())
    secret = install["properties"]["Token Secret"]
    answer = json.loads((FIXTURES / "send" / "sms_gsm.json").read_text())["answer"]
    stand_in.state.script("*", Answer(status=answer["status"], json=answer["json"]))
    # BulkSMS registers its two webhooks when enabled (Subscribe): none exists, both are created.
    created = (Answer(json=[]), Answer(json={"id": 1}), Answer(json={"id": 2}))
    stand_in.state.script("/v1/webhooks", *created)
    service = await start_service(
        tmp_path / "data", "--provider-stand-in", f"bulksms={stand_in.url}"
    )
    try:
        code, _, err = await cli("register", str(BULKSMS), target=service.target)
        assert code == 0, err
        properties = [f"--property={k}={v}" for k, v in install["properties"].items()]
        code, _, err = await cli(
            "enable", "--org", "acme", "--integration", "bulksms", *properties,
            "--number", "+27837654321=101", "--region", "ZA", target=service.target,
        )  # fmt: skip
        assert code == 0, err
        async with asyncio.timeout(30):
            await stand_in.state.wait_for_requests(len(created), path="/v1/webhooks")
        stand_in.state.clear_requests()
        code, out, err = await cli(
            "send", "--org", "acme", "--from", "+27837654321", "--to", "+27821234567",
            "--text", "Hi", "--json", target=service.target,
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["providerMessageId"] == "1234567890"
        (received,) = stand_in.state.requests
        assert (received.method, received.path) == ("POST", "/v1/messages")
    finally:
        assert await stop_service(service) == 0
    entries = [json.loads(line) for line in service.log if line.startswith("{")]
    warned = [e for e in entries if e["level"] == "warning" and e.get("stand_in") == stand_in.url]
    assert [e["integration"] for e in warned] == ["bulksms"]
    calls = [e for e in entries if e["msg"] == "provider call sent to a stand-in"]
    # the three Subscribe calls, then the send
    assert [(e["integration"], e["stand_in"]) for e in calls] == [("bulksms", stand_in.url)] * 4
    assert not any(secret in line or "/v1/messages" in line for line in service.log)


async def test_serve_refuses_a_stand_in_the_policy_does_not_allow(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "serve",
        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--data-dir", str(tmp_path / "data"),
        "--provider-stand-in", "bulksms=http://127.0.0.1:9",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode == 2
    message = err.decode().splitlines()[-1]
    assert message.startswith("msgbridge serve: provider_stand_in bulksms=http://127.0.0.1:9: ")
    assert "loopback" in message and "--outbound-allow" in message
    assert not (tmp_path / "data").exists()
