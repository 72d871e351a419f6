"""``msgbridge serve --workers 2`` on PostgreSQL, as a real process tree: both workers listen on
the one gRPC port and the one webhook port, connections reach both, what one worker stores the
other serves, a second ``msgbridge serve`` on the port is refused, a worker that dies is started
again, and SIGTERM stops them all (docs/operations.md, "Workers")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.demo import RunningFakeProvider, start_fake_provider
from tests.reliability._cluster import FROM_NUMBER, INTEGRATION, ORG, definition_json
from tests.reliability._database import fresh_database
from tests.reliability._waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Supervisor:
    process: asyncio.subprocess.Process
    log: list[dict[str, Any]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def entries(self, message: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry.get("msg") == message]

    async def read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.text.append(line.decode())
            try:
                self.log.append(json.loads(line))
            except ValueError:
                continue


async def _serve(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "serve", "--outbound-allow", "127.0.0.1", *args,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
async def provider() -> AsyncIterator[RunningFakeProvider]:
    running = await start_fake_provider()
    try:
        yield running
    finally:
        await running.aclose()


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    async with fresh_database() as url:
        process = await _serve(
            "--workers", "2", "--database-url", url, "--data-dir", str(tmp_path / "data"),
            "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        )  # fmt: skip
        running = Supervisor(process)
        reading = asyncio.create_task(running.read())
        try:
            started = await eventually(
                lambda: bool(running.entries("workers serving")), within_s=90
            )
            assert started, "".join(running.text)
            yield running
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    await process.wait()
            await reading


_LISTEN, _ESTABLISHED = "0A", "01"  # TCP states, as /proc/net/tcp writes them


def _inodes(port: int, state: str) -> set[str]:
    """The inodes of the TCP sockets on local ``port`` (any address) in ``state``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, inode = fields[1], fields[9]
                if fields[3] == state and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes - {"0"}


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _listens(pid: int, port: int) -> bool:
    return bool(_inodes(port, _LISTEN) & _socket_inodes(pid))


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return int(reply.status)


async def test_two_workers_share_the_ports_and_the_database(
    supervisor: Supervisor, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    (serving,) = supervisor.entries("workers serving")
    port, http_port, pids = serving["port"], serving["http_port"], serving["pids"]
    assert serving["workers"] == 2 and len(set(pids)) == 2
    for pid in pids:
        assert _listens(pid, port), f"worker {pid} does not listen on the gRPC port"
        assert _listens(pid, http_port), f"worker {pid} does not listen on the webhook port"

    # Registered and enabled through one connection …
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        await stub.RegisterIntegration(
            gateway_pb2.RegisterIntegrationRequest(definition_json=definition_json(provider.url)),
            timeout=30,
        )
        await stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=ORG,
                integration_id=INTEGRATION,
                properties={"API key": "workers-key"},
                numbers=[gateway_pb2.NumberAssignment(number=FROM_NUMBER, users=["101"])],
            ),
            timeout=30,
        )
    # … sent through sixteen others, held open together: the kernel spreads them over both
    # workers (all on one: a chance of 1 in 32,768), and each sends with what the other stored.
    # (A local subchannel pool each: channels to one address otherwise share one connection.)
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(16)
    ]
    try:
        replies = []
        for n, channel in enumerate(channels):
            request = gateway_pb2.SendMessageRequest(
                org_id=ORG, to=f"+1555000{n:04d}", text=f"worker test {n}", extension="101"
            )
            setattr(request, "from", FROM_NUMBER)
            replies.append(
                await gateway_pb2_grpc.GatewayStub(channel).SendMessage(request, timeout=30)
            )
        assert all(r.state == gateway_pb2.Message.SENT for r in replies)
        connected = _inodes(port, _ESTABLISHED)
        for pid in pids:
            assert connected & _socket_inodes(pid), f"no connection reached worker {pid}"
    finally:
        for channel in channels:
            await channel.close()
    received = provider.state.requests_to("/messages")
    assert sorted(r.json["content"] for r in received) == sorted(
        f"worker test {n}" for n in range(16)
    )

    # Another `msgbridge serve` on the workers' port is refused, as on one process's.
    other = await _serve(
        "--grpc-listen", f"127.0.0.1:{port}", "--http-listen", "127.0.0.1:0",
        "--data-dir", str(tmp_path / "other"),
    )  # fmt: skip
    _, err = await other.communicate()
    assert other.returncode == 1, err
    assert b"grpc_listen" in err and b"in use" in err
    assert not (tmp_path / "other").exists()

    # A worker that dies is started again, on the same ports; the other serves meanwhile.
    os.kill(pids[0], signal.SIGKILL)
    assert await eventually(lambda: bool(supervisor.entries("worker started again")), within_s=30)
    (again,) = supervisor.entries("worker started again")
    assert again["worker"] == 0 and again["pid"] not in pids
    assert await eventually(lambda: _listens(again["pid"], port), within_s=60)
    assert await _health(port) == health_pb2.HealthCheckResponse.SERVING

    # SIGTERM: every worker drains and exits, then the supervisor, with 0.
    supervisor.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        assert await supervisor.process.wait() == 0
    for pid in (pids[1], again["pid"]):
        assert _gone(pid), f"worker {pid} outlived its supervisor"


async def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    process = await _serve(
        "--workers", "2", "--data-dir", str(tmp_path / "data"),
        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    (line,) = err.decode().splitlines()
    assert line.startswith("msgbridge serve: workers: 2 processes need PostgreSQL"), line
    assert not (tmp_path / "data").exists()
