"""``make run`` again registers the demo integration only when it changed (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_process import Service, cli, start_service, stop_service

pytestmark = pytest.mark.e2e


def _demo_port(service: Service) -> int:
    for line in service.log:
        if "demo: fake provider" in line:
            return int(json.loads(line)["url"].rsplit(":", 1)[1])
    raise AssertionError("no demo line in the log")


async def _versions(service: Service) -> list[tuple[str, str]]:
    code, out, err = await cli("integrations", "--json", target=service.target)
    assert code == 0, err
    return [(i["id"], i["version"]) for i in map(json.loads, out.splitlines())]


async def test_serve_demo_again_keeps_the_stored_demo_version(tmp_path: Path) -> None:
    first = await start_service(
        tmp_path / "data", "--demo", "--demo-provider-listen", "127.0.0.1:0"
    )
    try:
        assert await _versions(first) == [("demo", "1")]
        demo = f"127.0.0.1:{_demo_port(first)}"
    finally:
        assert await stop_service(first) == 0
    again = await start_service(tmp_path / "data", "--demo", "--demo-provider-listen", demo)
    try:
        assert await _versions(again) == [("demo", "1")]  # not a new version each run
    finally:
        assert await stop_service(again) == 0
    # A changed definition (the fake provider elsewhere) is registered as the next version.
    moved = await start_service(
        tmp_path / "data", "--demo", "--demo-provider-listen", "127.0.0.1:0"
    )
    try:
        assert await _versions(moved) == [("demo", "2")]
    finally:
        assert await stop_service(moved) == 0
