"""The exchange log's writer (server/core/_exchange_log.py): exchanges are written in batches —
at the interval, at once when enough wait, before a message's are read and at close — and a
batch the store refuses is dropped with a log line that says how many, nothing of their content.
An exchange the send path keeps is built and masked when its batch is written, into the record
it would have been built into at once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from server.core import ExchangeLog
from server.core._exchanges import BODY_CAP, exchange_of
from server.engine import RenderedRequest
from server.outbound import ProviderResponse
from server.security.secrets import SecretMask
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


# --- kept as made, built and masked when written --------------------------------------------

SECRET = "s3cr3t-Value/+x"


class _Installation:
    id, org_id, integration_id = "inst-1", "org-1", "acme"


def kept_by(log: ExchangeLog, request_body: bytes, answer_body: bytes, number: int) -> Any:
    """Keep one exchange in ``log`` as the send path does; returns what it was made of."""
    mask = SecretMask.of([SECRET])
    request = RenderedRequest(
        method="POST",
        url=f"https://api.example/send?key={SECRET}",
        headers=(("Authorization", f"Bearer {SECRET}"), ("X-Echo", SECRET)),
        body=request_body,
    )
    answer = ProviderResponse(
        status=200,
        headers=CIMultiDictProxy(CIMultiDict([("X-Echo", SECRET)])),
        body=answer_body,
        elapsed_s=0.01,
    )
    when = (datetime(2026, 12, 6, tzinfo=UTC), 0.01)
    installation: Any = _Installation()
    log.keep(mask, installation, ExchangeKind.SEND, request, answer, when, f"m{number}")
    return mask, installation, request, answer, when


@pytest.mark.parametrize("size", [10, BODY_CAP - 20, BODY_CAP + 3, 1_000_000])
async def test_an_exchange_kept_as_made_is_written_as_built_at_once(size: int) -> None:
    """Bodies of every size, a secret straddling the cap: the written record is the one
    ``exchange_of`` makes of the whole exchange, masked — only its id (a running count) differs."""
    store = FakeStore()
    log = log_of(store)
    body = b"x" * (size - 5) + SECRET.encode() + b"y" * 50
    mask, installation, request, answer, (started_at, duration_s) = kept_by(log, body, body, 1)
    await log.flush()
    [[written]] = store.batches
    whole = exchange_of(
        mask,
        installation=installation,
        kind=ExchangeKind.SEND,
        message_id="m1",
        request=request,
        answer=answer,
        started_at=started_at,
        duration_s=duration_s,
    )
    assert dataclasses.replace(written, id=whole.id) == whole
    assert SECRET not in repr(written)
    assert len(written.request_body) <= BODY_CAP + 1 and len(written.response_body) <= BODY_CAP + 1


async def test_a_flush_cancelled_while_building_loses_nothing() -> None:
    """More exchanges than one building chunk, and the flush cancelled between two chunks
    (a close): every exchange is written by the next flush, in order, each once."""
    store = FakeStore()
    log = log_of(store, flush_interval_s=3600)
    count = 150  # three chunks
    for number in range(count):
        kept_by(log, b"hello", b"ok", number)
    flushing = asyncio.create_task(log.flush())
    await asyncio.sleep(0)  # the first chunk is built, then it waits for the loop
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert store.batches == []
    await log.flush()
    [batch] = store.batches
    assert [x.message_id for x in batch] == [f"m{n}" for n in range(count)]
