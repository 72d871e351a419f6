"""The data directory is its owner's only: created 0700, every file in it 0600.

That holds for the SQLite database and the -wal/-shm files SQLite creates beside it (it gives them
the database file's mode), for the key file, and for an existing database's files that were open to
others (by an older version, or a copy): they are tightened when the store opens them."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from server.demo import RunningFakeProvider
from server.store import SqliteStore

from .conftest import TEST_DATABASE, GatewayFactory, definition, stop


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common umask (022), under which a file created without a mode is world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_the_data_directory_is_0700_and_its_files_0600_after_sends_and_a_stop(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert not data.exists()
    gateway = await start_gateway(data_dir=data)
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    for _ in range(3):
        await gateway.send()
    running = {p.name: mode(p) for p in data.iterdir()}
    await stop(gateway)  # checkpoints the WAL back into the database

    assert mode(data) == 0o700
    stopped = {p.name: mode(p) for p in data.iterdir()}
    if TEST_DATABASE == "sqlite":
        assert any(name.endswith("-wal") for name in running)
        assert any(name.startswith("msgbridge") for name in stopped)
    assert "secret.key" in stopped
    assert running == dict.fromkeys(running, 0o600)
    assert stopped == dict.fromkeys(stopped, 0o600)


async def test_a_new_store_s_files_are_0600_after_writes_and_checkpoints(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    async with SqliteStore(directory) as store:
        database = store.database_path
        for n in range(20):
            await store.put_integration(f"acme-{n}", "{}")
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
        assert (mode(database), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        with closing(sqlite3.connect(database)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        await store.put_integration("after-checkpoint", "{}")
        assert (mode(database), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    assert mode(directory) == 0o700
    leftovers = sorted(p.name for p in directory.iterdir())
    assert leftovers and all(mode(directory / name) == 0o600 for name in leftovers), leftovers
    async with SqliteStore(directory) as store:
        assert await store.get_integration("after-checkpoint") is not None


async def test_an_existing_database_open_to_others_is_tightened_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    async with SqliteStore(directory) as store:
        database = store.database_path
        await store.put_integration("acme", "{}")
    os.chmod(directory, 0o755)  # an existing directory stays as its operator set it
    companions = [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm", "-journal")]
    for path in [database, *companions]:
        path.touch()
        os.chmod(path, 0o644)

    async with SqliteStore(directory) as store:
        assert await store.get_integration("acme") is not None
        assert mode(database) == 0o600
        assert {p.name: mode(p) for p in companions if p.exists()} == {
            p.name: 0o600 for p in companions if p.exists()
        }
        await store.put_integration("again", "{}")
        assert mode(Path(f"{database}-wal")) == 0o600
    assert mode(directory) == 0o755


async def test_a_database_file_named_by_url_is_created_0600(tmp_path: Path) -> None:
    async with SqliteStore.from_file(tmp_path / "var" / "gateway.db") as store:
        await store.put_integration("acme", "{}")
        assert mode(store.database_path) == 0o600
    assert mode(tmp_path / "var") == 0o700
