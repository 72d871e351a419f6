"""``msgbridge serve --workers N`` on PostgreSQL (issue 20; docs/operations.md, "Workers").

``workers``: synchronous SendMessage from 64 callers spread over 16 connections (a local
subchannel pool each, so that each is a TCP connection of its own and the kernel spreads them
over the workers), into a real ``msgbridge serve --workers N`` process tree on a new database, for
N = 1 and N = 2 in the same run. The CPU per send is the whole tree's (the supervisor and its
workers) and the fake provider's, as in every row; the targets compare the two rows
(``tests.bench.__main__``: throughput at least 1.3×, CPU per send at most 1.15×).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

from ._harness import _SERVER_PIDS, BenchEnv, Benchmark, Result, measure
from .service import bench_definition, recipient, send_request

__all__ = ["WORKERS", "workers_name"]

_ROOT = Path(__file__).resolve().parents[2]
_CONNECTIONS = 16


def workers_name(workers: int) -> str:
    return f"msgbridge SendMessage, PostgreSQL, --workers {workers}"


async def _start(env: BenchEnv, workers: int) -> str:
    """A ``msgbridge serve --workers N`` tree on a new database, the bench integration enabled;
    its gRPC address. Its processes count in the CPU figures; it is stopped when the run ends."""
    database_url = await env.postgres_database()
    data_dir = tempfile.mkdtemp(prefix="msgbridge-bench-workers-")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "serve", "--workers", str(workers),
        "--database-url", database_url, "--data-dir", data_dir, "--log-level", "INFO",
        "--grpc-listen", "127.0.0.1:0", "--no-sidecar", "--outbound-allow", "127.0.0.1",
        cwd=_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def stop() -> None:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 60)

    env.add_cleanup(stop)
    serving = await _serving(process, workers)
    _SERVER_PIDS.update([process.pid, *serving.get("pids", [])])
    target = f"127.0.0.1:{serving['port']}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        await stub.RegisterIntegration(
            gateway_pb2.RegisterIntegrationRequest(definition_json=bench_definition(env.fake_url))
        )
        await stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id="bench",
                integration_id="bench",
                properties={"API key": "bench-key"},
                numbers=[gateway_pb2.NumberAssignment(number="+15550001111", users=["101"])],
            )
        )
    return target


async def _serving(process: asyncio.subprocess.Process, workers: int) -> dict[str, Any]:
    """The log entry that says it serves: the supervisor's ``workers serving``, or with one
    worker (no supervisor: ``msgbridge serve`` itself) ``gRPC API serving``; its stderr is
    drained from then on."""
    assert process.stderr is not None
    stderr = process.stderr
    lines: list[str] = []
    async with asyncio.timeout(120):
        while True:
            line = (await stderr.readline()).decode()
            if not line:
                raise RuntimeError("msgbridge serve --workers exited:\n" + "".join(lines))
            lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == ("workers serving" if workers > 1 else "gRPC API serving"):
                break

    async def drain() -> None:
        async for _ in stderr:
            pass

    asyncio.get_running_loop().create_task(drain())
    result: dict[str, Any] = entry
    return result


async def send_to_workers(env: BenchEnv, benchmark: Benchmark) -> Result:
    workers = int(benchmark.name.rsplit(" ", 1)[1])
    target = await _start(env, workers)
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(_CONNECTIONS)
    ]
    stubs = itertools.cycle([gateway_pb2_grpc.GatewayStub(c) for c in channels])
    requests = itertools.cycle([send_request(recipient(i)) for i in range(1_000)])
    try:

        async def call() -> object:
            return await next(stubs).SendMessage(next(requests))

        return await measure(benchmark, call)
    finally:
        for channel in channels:
            await channel.close()


WORKERS: list[Benchmark] = [
    Benchmark(name=workers_name(n), concurrency=64, run=send_to_workers, alone=True) for n in (1, 2)
]
