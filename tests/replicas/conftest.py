"""Two real ``msgbridge serve`` replicas on one PostgreSQL database of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reliability._cluster import Cluster
from tests.reliability._database import fresh_database


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str) -> AsyncIterator[Cluster]:
    """Replicas A and B (each with its in-process sidecar), the fake provider, and the
    integration enabled for the organisation through A."""
    running = await Cluster.start(tmp_path, database_url, sidecars=False)
    try:
        await running.install()
        yield running
    finally:
        await running.aclose()
