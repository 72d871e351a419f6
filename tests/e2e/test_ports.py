"""An address already taken: ``msgbridge serve`` refuses to start, in one line, and makes nothing.

Issue 19's first hour: a second ``msgbridge serve`` on the same ``--grpc-listen`` used to start
(gRPC's SO_REUSEPORT) and split the calls between two databases; a port in use printed a
traceback from grpc's ``Server.__del__`` after the data directory and key were made.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from server.app import build_server
from tests.e2e.test_process import ROOT, start_service, stop_service
from tests.service.conftest import service_settings

pytestmark = pytest.mark.e2e


async def _serve(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "serve", "--outbound-allow", "127.0.0.1", *args,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    return process.returncode or 0, err.decode()


def _assert_refused_cleanly(code: int, err: str, setting: str, data_dir: Path) -> None:
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("msgbridge serve:")]
    assert len(lines) == 1, err
    assert setting in lines[0]
    assert "in use" in lines[0]
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    assert "Unclosed" not in err
    assert not data_dir.exists(), "made before the ports were bound"


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


async def test_a_second_serve_on_the_same_grpc_port_fails_to_start(tmp_path: Path) -> None:
    first = await start_service(tmp_path / "first")
    try:
        code, err = await _serve(
            "--grpc-listen", first.target, "--http-listen", "127.0.0.1:0",
            "--data-dir", str(tmp_path / "second"),
        )  # fmt: skip
    finally:
        assert await stop_service(first) == 0
    _assert_refused_cleanly(code, err, "grpc_listen", tmp_path / "second")


async def test_a_taken_http_port_fails_to_start_and_makes_nothing(
    tmp_path: Path, taken_port: int
) -> None:
    code, err = await _serve(
        "--grpc-listen", "127.0.0.1:0", "--http-listen", f"127.0.0.1:{taken_port}",
        "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    _assert_refused_cleanly(code, err, "http_listen", tmp_path / "data")


async def test_a_taken_metrics_port_fails_to_start_and_makes_nothing(
    tmp_path: Path, taken_port: int
) -> None:
    code, err = await _serve(
        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--metrics-listen", f"127.0.0.1:{taken_port}", "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    _assert_refused_cleanly(code, err, "metrics_listen", tmp_path / "data")


async def test_a_non_loopback_metrics_address_is_refused_without_insecure(tmp_path: Path) -> None:
    code, err = await _serve(
        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--metrics-listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    assert code != 0, err
    assert "metrics_listen: refusing to serve metrics on 0.0.0.0:0" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()


async def test_a_taken_demo_port_fails_to_start_and_makes_nothing(
    tmp_path: Path, taken_port: int
) -> None:
    code, err = await _serve(
        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--demo",
        "--demo-provider-listen", f"127.0.0.1:{taken_port}", "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    _assert_refused_cleanly(code, err, "demo_provider_listen", tmp_path / "data")


async def test_the_grpc_port_takes_no_so_reuseport(tmp_path: Path) -> None:
    """grpc's own servers set SO_REUSEPORT: one binds a port another holds only when both do."""
    built, port = await build_server(service_settings(tmp_path / "data"))
    other = grpc.aio.server()
    try:
        with pytest.raises(RuntimeError, match="Failed to bind"):
            other.add_insecure_port(f"127.0.0.1:{port}")
    finally:
        await other.stop(None)
        await built.stop(0)
