"""``msgbridge events --follow`` outlives a server that restarts, and gives up loudly.

Issue 19's first hour: it used to exit 0, printing nothing, when the server stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_process import ROOT, Service, cli, start_service, stop_service

pytestmark = pytest.mark.e2e

_DEMO = ("--demo", "--demo-provider-listen", "127.0.0.1:0")


async def _follow(target: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "events", "--follow", "--json", *args,
        "--target", target,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MSGBRIDGE_TARGET": ""},
    )  # fmt: skip


async def _line(stream: asyncio.StreamReader | None, *, containing: str = "") -> str:
    assert stream is not None
    async with asyncio.timeout(60):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"the stream closed before a line with {containing!r}"
            if containing in line:
                return line


async def _enable(service: Service) -> str:
    code, out, err = await cli(
        "enable", "--org", "acme", "--integration", "demo", "--property", "API key=k",
        "--number", "+15550001111=101", "--json", target=service.target,
    )  # fmt: skip
    assert code == 0, err
    url: str = json.loads(out)["webhookUrl"]
    return url.split("127.0.0.1:0", 1)[1]


async def _inbound(service: Service, path: str, text: str) -> None:
    body = {"method": "message", "params": {"from": "+15557654321", "to": "+15550001111"}}
    body["params"]["content"] = text
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{service.http_port}{path}"
        async with http.post(url, json=body) as answer:
            assert answer.status == 200, await answer.text()


async def test_follow_resumes_after_its_last_cursor_when_the_server_restarts(
    tmp_path: Path,
) -> None:
    first = await start_service(tmp_path / "data", *_DEMO)
    path = await _enable(first)
    await _inbound(first, path, "before the restart")
    follower = await _follow(first.target, "--earliest")
    again: Service | None = None
    try:
        seen = json.loads(await _line(follower.stdout))
        assert seen["text"] == "before the restart"

        assert await stop_service(first) == 0
        await _line(follower.stderr, containing="reconnecting")
        assert follower.returncode is None

        port = f"127.0.0.1:{first.grpc_port}"
        again = await start_service(tmp_path / "data", *_DEMO, "--grpc-listen", port)
        resumed = await _line(follower.stderr, containing="reconnected")
        assert f"after cursor {seen['cursor']}" in resumed

        await _inbound(again, path, "after the restart")
        after = json.loads(await _line(follower.stdout))
        assert after["text"] == "after the restart"  # not the first one again
        assert int(after["cursor"]) > int(seen["cursor"])
    finally:
        follower.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await follower.wait()
        if again is not None:
            assert await stop_service(again) == 0
    assert follower.returncode == 130


async def test_follow_exits_1_with_the_reason_when_it_gives_up(tmp_path: Path) -> None:
    service = await start_service(tmp_path / "data", *_DEMO)
    path = await _enable(service)
    follower = await _follow(service.target, "--give-up-after", "1", "--earliest")
    try:
        await _inbound(service, path, "one")
        await _line(follower.stdout, containing='"one"')  # the stream is open
    finally:
        assert await stop_service(service) == 0
    async with asyncio.timeout(60):
        _, err_bytes = await follower.communicate()
    err = err_bytes.decode()
    assert follower.returncode == 1, err
    assert "gave up" in err
    assert "Traceback" not in err
