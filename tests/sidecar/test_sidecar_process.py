"""``msgbridge sidecar`` as a real process: it forwards to a gRPC core, reports readiness, logs
no secrets, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from msgbridge.v1 import ingest_pb2, ingest_pb2_grpc

pytestmark = pytest.mark.e2e

# The command group as client/cli.py runs it, without depending on its registration.
_MAIN = (
    "import argparse, sys\n"
    "from client._sidecar_cli import add_parsers\n"
    "parser = argparse.ArgumentParser(prog='msgbridge')\n"
    "add_parsers(parser.add_subparsers())\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.handler(args))\n"
)


class Core(ingest_pb2_grpc.IngestServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[ingest_pb2.WebhookDelivery, dict[str, str]]] = []

    async def IngestWebhook(
        self, request: ingest_pb2.WebhookDelivery, context: Any
    ) -> ingest_pb2.WebhookVerdict:
        self.calls.append((request, dict(context.invocation_metadata())))
        return ingest_pb2.WebhookVerdict(http_status=200, body=b"stored", content_type="text/plain")


@pytest.fixture
async def core() -> AsyncIterator[tuple[Core, int]]:
    server = grpc.aio.server()
    servicer = Core()
    ingest_pb2_grpc.add_IngestServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield servicer, port
    await server.stop(None)


async def _serving_port(stderr: asyncio.StreamReader, seen: list[str]) -> int:
    async with asyncio.timeout(30):
        while line := await stderr.readline():
            text = line.decode()
            seen.append(text)
            entry = json.loads(text)
            if entry["msg"] == "webhook sidecar serving":
                return int(entry["port"])
    raise AssertionError(f"the sidecar never served: {seen}")


async def test_sidecar_process_forwards_to_the_core_and_stops_on_sigterm(
    core: tuple[Core, int],
) -> None:
    servicer, core_port = core
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MAIN,
        "sidecar",
        "--core",
        f"127.0.0.1:{core_port}",
        "--http-listen",
        "127.0.0.1:0",
        "--public-url",
        "https://hooks.example.com",
        "--log-level",
        "DEBUG",
        env={"MSGBRIDGE_CORE_TOKEN": "core-token-secret", "PATH": ""},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    logs: list[str] = []
    try:
        port = await _serving_port(process.stderr, logs)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"http://127.0.0.1:{port}/webhooks/acme/TOKENSECRET?a=1", data=b"BODYSECRET"
            ) as response:
                assert response.status == 200
                assert await response.read() == b"stored"
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            logs.append((await process.stderr.read()).decode())
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    [(delivery, metadata)] = servicer.calls
    assert delivery.url == "https://hooks.example.com/webhooks/acme/TOKENSECRET?a=1"
    assert delivery.body == b"BODYSECRET"
    assert metadata["authorization"] == "Bearer core-token-secret"
    text = "".join(logs)
    assert "request answered" in text
    for secret in ("TOKENSECRET", "BODYSECRET", "core-token-secret"):
        assert secret not in text
