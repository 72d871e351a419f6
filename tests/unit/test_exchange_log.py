"""The exchange log's writer (server/core/_exchange_log.py): exchanges are written in batches —
at the interval, at once when enough wait, before a message's are read and at close — and a
batch the store refuses is dropped with a log line that says how many, nothing of their content."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from server.core import ExchangeLog
from server.store import ExchangeKind, ProviderExchange


def exchange(number: int, message_id: str = "m1") -> ProviderExchange:
    return ProviderExchange(
        id=f"x{number:03d}",
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        message_id=message_id,
        kind=ExchangeKind.SEND,
        method="POST",
        url="https://api.example/send",
        request_headers=(),
        request_body="the body",
        status=200,
        response_headers=(),
        response_body="",
        started_at=datetime(2026, 12, 6, tzinfo=UTC),
        duration_ms=1.0,
    )


class FakeStore:
    def __init__(self) -> None:
        self.batches: list[list[ProviderExchange]] = []
        self.refuse = False
        self.wrote = asyncio.Event()

    async def record_exchanges(self, exchanges: Sequence[ProviderExchange]) -> None:
        if self.refuse:
            raise RuntimeError("the store is down")
        self.batches.append(list(exchanges))
        self.wrote.set()

    async def list_exchanges(self, message_id: str) -> tuple[ProviderExchange, ...]:
        return tuple(x for batch in self.batches for x in batch if x.message_id == message_id)


def log_of(store: FakeStore, **options: Any) -> ExchangeLog:
    return ExchangeLog(store, **options)  # type: ignore[arg-type]


async def test_exchanges_wait_for_the_next_batch_and_are_written_together() -> None:
    store = FakeStore()
    log = log_of(store, flush_interval_s=3600)
    await log.start()
    try:
        for number in range(3):
            log.record(exchange(number))
        await asyncio.sleep(0)
        assert store.batches == []  # an append, not a store write
        assert [x.id for x in await log.of_message("m1")] == ["x000", "x001", "x002"]
        assert len(store.batches) == 1
    finally:
        await log.aclose()


async def test_a_full_batch_is_written_at_once() -> None:
    store = FakeStore()
    log = log_of(store, flush_interval_s=3600, max_pending=4)
    await log.start()
    try:
        for number in range(4):
            log.record(exchange(number))
        async with asyncio.timeout(5):
            await store.wrote.wait()
        assert [len(batch) for batch in store.batches] == [4]
    finally:
        await log.aclose()


async def test_close_writes_what_waits_and_a_disabled_log_keeps_nothing() -> None:
    store = FakeStore()
    log = log_of(store, flush_interval_s=3600)
    await log.start()
    log.record(exchange(1))
    await log.aclose()
    assert [[x.id for x in batch] for batch in store.batches] == [["x001"]]

    off = log_of(FakeStore(), enabled=False)
    off.record(exchange(2))
    await off.flush()
    assert await off.of_message("m1") == ()


async def test_a_refused_batch_is_dropped_and_logged_without_its_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore()
    store.refuse = True
    log = log_of(store)
    log.record(dataclasses.replace(exchange(1), request_body="SECRET-LOOKING"))
    with caplog.at_level(logging.ERROR):
        await log.flush()
    [record] = caplog.records
    assert record.getMessage() == "provider exchanges not kept" and record.count == 1  # type: ignore[attr-defined]
    assert "SECRET-LOOKING" not in caplog.text
    store.refuse = False
    await log.flush()
    assert store.batches == []  # dropped, not retried
