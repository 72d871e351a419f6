"""A purge's chunk sizes (server/store/_purge_pace.py): each chunk is sized to take about its
budget (on SQLite, PURGE_CHUNK_S on the writer thread) at the rate the last one deleted, within
bounds; and a purge rests as long as each chunk took."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.store._purge_pace import PurgeChunks, PurgePace
from server.store.sqlite._inbound import PURGE_CHUNK_S


def test_the_first_chunk_is_small_and_never_above_the_largest() -> None:
    assert PurgeChunks(5000, PURGE_CHUNK_S).size == 500
    assert PurgeChunks(3, PURGE_CHUNK_S).size == 3


def test_the_next_chunk_takes_about_the_budget_at_the_last_chunk_s_rate() -> None:
    chunks = PurgeChunks(5000, PURGE_CHUNK_S)
    chunks.took(500, PURGE_CHUNK_S * 2)  # twice the budget: half as many rows
    assert chunks.size == 250
    chunks.took(250, PURGE_CHUNK_S / 4)  # a quarter of it: four times as many
    assert chunks.size == 1000


def test_sizes_stay_between_one_row_and_the_largest() -> None:
    chunks = PurgeChunks(2000, PURGE_CHUNK_S)
    chunks.took(10, 1.0)
    assert chunks.size == 1
    chunks.took(1, 1e-9)
    assert chunks.size == 2000
    chunks.took(0, 0.5)  # nothing deleted: nothing learnt
    assert chunks.size == 2000


async def test_a_purge_rests_three_times_as_long_as_its_chunk_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rests: list[float] = []

    async def sleep(seconds: float) -> None:
        rests.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    started = time.perf_counter() - 0.004  # a chunk that took 4 ms
    await PurgePace().rest_after(started)
    assert len(rests) == 1
    assert 0.012 <= rests[0] < 0.1  # at a quarter share
    await PurgePace(share=1.0).rest_after(started)  # a purge given everything never rests
    assert len(rests) == 1
    with pytest.raises(ValueError, match="share"):
        PurgePace(share=0.0)
