"""The SQLite store's writer (server/store/sqlite/_workers.py): a batch is one transaction; when
an operation raises, the batch runs again with each operation in its own SAVEPOINT, so the one
that raises is rolled back alone and the others' work is committed — on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from server.store import Conflict
from server.store.sqlite._workers import Writer


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    return Writer(conn, max_batch=64)


def _insert(key: str) -> Callable[[sqlite3.Connection], str]:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
        return key

    return op


def _keys(path: Path) -> list[str]:
    with sqlite3.connect(path / "w.db") as conn:
        return [k for (k,) in conn.execute("SELECT k FROM t ORDER BY k")]


async def _batch(writer: Writer, *keys: str) -> list[object]:
    """Submits every key before the writer can take the first, so they share one batch (the
    writer thread is held by a first operation that waits for all to be queued)."""
    queued = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold(conn: sqlite3.Connection) -> None:
        asyncio.run_coroutine_threadsafe(queued.wait(), loop).result(timeout=5)

    first = writer.submit(hold)
    futures = [writer.submit(_insert(k)) for k in keys]
    queued.set()
    await first
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def test_a_batch_commits_every_operation(writer: Writer, tmp_path: Path) -> None:
    try:
        assert await _batch(writer, "a", "b", "c") == ["a", "b", "c"]
        assert _keys(tmp_path) == ["a", "b", "c"]
    finally:
        writer.stop()


async def test_an_operation_that_raises_is_rolled_back_alone(
    writer: Writer, tmp_path: Path
) -> None:
    try:
        results = await _batch(writer, "a", "b", "a", "c")  # the second "a" breaks the key
        assert results[:2] == ["a", "b"] and results[3] == "c"
        assert isinstance(results[2], Conflict)
        assert _keys(tmp_path) == ["a", "b", "c"]  # the others' work kept, once each
    finally:
        writer.stop()


async def test_an_operation_alone_that_raises_leaves_nothing(
    writer: Writer, tmp_path: Path
) -> None:
    def half(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k) VALUES ('x')")
        raise RuntimeError("after a write")

    try:
        with pytest.raises(RuntimeError):
            await writer.submit(half)
        assert _keys(tmp_path) == []
        assert await writer.submit(_insert("y")) == "y"  # the writer goes on
        assert _keys(tmp_path) == ["y"]
    finally:
        writer.stop()
