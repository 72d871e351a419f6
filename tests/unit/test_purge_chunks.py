"""The SQLite purge's chunk sizes (server/store/sqlite/_inbound.py): each chunk is sized to take
about PURGE_CHUNK_S on the writer thread at the rate the last one deleted, within bounds."""

from __future__ import annotations

from server.store.sqlite._inbound import PURGE_CHUNK_S, PurgeChunks


def test_the_first_chunk_is_small_and_never_above_the_largest() -> None:
    assert PurgeChunks(5000).size == 500
    assert PurgeChunks(3).size == 3


def test_the_next_chunk_takes_about_the_budget_at_the_last_chunk_s_rate() -> None:
    chunks = PurgeChunks(5000)
    chunks.took(500, PURGE_CHUNK_S * 2)  # twice the budget: half as many rows
    assert chunks.size == 250
    chunks.took(250, PURGE_CHUNK_S / 4)  # a quarter of it: four times as many
    assert chunks.size == 1000


def test_sizes_stay_between_one_row_and_the_largest() -> None:
    chunks = PurgeChunks(2000)
    chunks.took(10, 1.0)
    assert chunks.size == 1
    chunks.took(1, 1e-9)
    assert chunks.size == 2000
    chunks.took(0, 0.5)  # nothing deleted: nothing learnt
    assert chunks.size == 2000
