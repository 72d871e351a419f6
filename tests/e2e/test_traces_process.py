"""``msgbridge serve`` turns traces on from the ``OTEL_*`` environment, and only from it
(docs/operations.md, "Traces"): the console exporter prints the spans of a call on stdout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _environment(**otel: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MSGBRIDGE_"))}
    return {**kept, **otel}


async def _serve(data_dir: Path, **otel: str) -> tuple[str, str, int | None]:
    """Serve, make one call, stop: stdout, stderr and the exit code."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "serve", "--no-sidecar",
        "--grpc-listen", "127.0.0.1:0", "--data-dir", str(data_dir),
        cwd=ROOT, env=_environment(**otel),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    err: list[str] = []
    async with asyncio.timeout(60):
        while True:
            line = (await process.stderr.readline()).decode()
            if not line:  # exited before serving
                out = (await process.stdout.read()).decode()
                return out, "".join(err), await process.wait()
            err.append(line)
            try:
                entry = json.loads(line)
            except ValueError:  # not a log line: an error message before logging
                continue
            if entry.get("msg") == "gRPC API serving":
                port = entry["port"]
                break
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            await stub.ListIntegrations(gateway_pb2.ListIntegrationsRequest())
        process.send_signal(signal.SIGTERM)
        out_bytes, err_bytes = await process.communicate()
    return out_bytes.decode(), "".join(err) + err_bytes.decode(), process.returncode


async def test_otel_traces_exporter_turns_traces_on(tmp_path: Path) -> None:
    out, err, code = await _serve(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="gw")
    assert code == 0, err
    assert '"name": "ListIntegrations"' in out
    assert '"service.name": "gw"' in out
    assert '"msg": "traces on"' in err


async def test_without_otel_variables_nothing_is_traced(tmp_path: Path) -> None:
    out, err, code = await _serve(tmp_path)
    assert code == 0, err
    assert out == ""
    assert "traces on" not in err


async def test_an_unknown_exporter_stops_the_service_with_its_name(tmp_path: Path) -> None:
    _, err, code = await _serve(tmp_path / "data", OTEL_TRACES_EXPORTER="nonesuch")
    assert code == 2
    assert "OTEL_TRACES_EXPORTER: no span exporter 'nonesuch'" in err
    assert not (tmp_path / "data").exists()  # refused before anything was made
