"""The real ``msgbridge serve`` process and the real CLI, as an operator uses them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.demo import RunningFakeProvider, start_fake_provider
from tests.service.conftest import (
    TEST_DATABASE,
    _create_database,
    _database_url,
    _drop_database,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    process: asyncio.subprocess.Process
    grpc_port: int
    http_port: int
    log: list[str]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


async def _read_ports(process: asyncio.subprocess.Process, log: list[str]) -> tuple[int, int]:
    assert process.stderr is not None
    grpc_port = http_port = 0
    loop = ""
    async with asyncio.timeout(60):
        while not (grpc_port and http_port):
            line = (await process.stderr.readline()).decode()
            if not line:
                raise RuntimeError("the service exited:\n" + "".join(log))
            log.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "gRPC API serving":
                grpc_port = entry["port"]
                loop = entry["event_loop"]
            if entry.get("msg") == "webhook sidecar serving":
                http_port = entry["port"]
    # uvloop is a dependency: the default loop (server/_event_loop.py) is the one serving.
    assert loop == "uvloop", loop
    return grpc_port, http_port


async def start_service(data_dir: Path, *extra: str) -> Service:
    """``msgbridge serve`` on ``data_dir``; on PostgreSQL, on the database of ``data_dir`` (a
    service started again on the same data dir sees what the first one stored)."""
    if TEST_DATABASE == "postgres":
        name = _DATABASES.get(data_dir)
        if name is None:
            name = _DATABASES[data_dir] = await _create_database()
        extra = (*extra, "--database-url", _database_url(name))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "serve",
        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--data-dir", str(data_dir), "--outbound-allow", "127.0.0.1", *extra,
        cwd=ROOT, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    log: list[str] = []
    grpc_port, http_port = await _read_ports(process, log)
    service = Service(process, grpc_port, http_port, log)

    async def drain() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            log.append(line.decode())

    service.drain = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return service


_DATABASES: dict[Path, str] = {}


@pytest.fixture(autouse=True)
async def _drop_databases() -> AsyncIterator[None]:
    yield
    while _DATABASES:
        await _drop_database(_DATABASES.popitem()[1])


async def stop_service(service: Service) -> int:
    service.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        code = await service.process.wait()
    await service.drain  # type: ignore[attr-defined]
    return code


async def cli(*args: str, target: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", *args, "--target", target,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MSGBRIDGE_TARGET": ""},
    )  # fmt: skip
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    provider = await start_fake_provider()
    yield provider
    await provider.aclose()


async def test_register_enable_send_through_the_cli(
    tmp_path: Path, fake: RunningFakeProvider
) -> None:
    definition = json.loads((ROOT / "integrations" / "demo.json").read_text())
    definition_file = tmp_path / "demo.json"
    definition_file.write_text(json.dumps(definition))
    service = await start_service(tmp_path / "data")
    try:
        code, out, err = await cli("register", str(definition_file), target=service.target)
        assert code == 0, err
        server = fake.url.removeprefix("http://")
        code, out, err = await cli(
            "enable", "--org", "acme", "--integration", "demo",
            "--property", f"Server={server}", "--property", "API key=s3cr=t",
            "--number", "+15550001111=101,102", "--json", target=service.target,
        )  # fmt: skip
        assert code == 0, err
        installation = json.loads(out)
        assert installation["webhookUrl"].startswith("http://127.0.0.1:0/webhooks/demo/")
        assert "s3cr=t" not in out

        code, out, err = await cli(
            "send", "--org", "acme", "--from", "+15550001111", "--to", "+15557654321",
            "--text", "Hello 👋 from the CLI", "--json", target=service.target,
        )  # fmt: skip
        assert code == 0, err
        reply = json.loads(out)
        (received,) = fake.state.requests
        assert reply["providerMessageId"] == received.answer_id
        assert dict(received.headers)["Authorization"] == "Bearer s3cr=t"
        assert received.json["content"] == "Hello 👋 from the CLI"

        code, out, err = await cli(
            "send", "--org", "acme", "--from", "+15559999999", "--to", "+1555", "--text", "x",
            target=service.target,
        )  # fmt: skip
        assert code != 0
        assert "PERMISSION_DENIED" in err
    finally:
        assert await stop_service(service) == 0
    assert not any("s3cr=t" in line for line in service.log)


async def test_serve_demo_registers_the_demo_integration(tmp_path: Path) -> None:
    service = await start_service(
        tmp_path / "data", "--demo", "--demo-provider-listen", "127.0.0.1:0"
    )
    try:
        code, out, err = await cli("integrations", "--json", target=service.target)
        assert code == 0, err
        assert [json.loads(line)["id"] for line in out.splitlines()] == ["demo"]
    finally:
        assert await stop_service(service) == 0
    assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o777 == 0o600
