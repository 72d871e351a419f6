"""``make bench-grown``: the service on a store that holds history (issue 20), loaded before the
service starts through the store's own paths (the bulk :meth:`server.store.Store.ingest_many`,
``create_installation``), beside the same on a smaller store, in the same run.

- ``webhook ingest at 1,000/s, old rows kept (…)``: webhooks posted at a steady 1,000 a second
  (open loop) to the in-process sidecar of a service whose store holds ``HISTORY`` webhook
  requests two days old, each with its event and its dedupe key — three rows to purge per
  request; the latency is each POST's, until its answer (the webhook stored);
- ``webhook ingest at 1,000/s, old rows purged (…)``: the same while the retention purge deletes
  them all (:meth:`Store.purge`, as the retention keeper calls it with one day kept), started
  half a second into the load; the purge's counts and duration are printed when it ends. The
  target: the purge's p99 at most twice the other's. The two rows are measured in turn, three
  rounds each (each purged round on a server loaded afresh: a purge happens once), and each
  reports its median round by p99.
- ``listing installations page by page, N installations (…)``: ``ListInstallations`` from the
  first page to the last, 100 a page, over and over for 2 s, with 1,000 and with 10,000
  installations in 1,000 organisations; the rate is installations listed a second. The target:
  per installation, 10,000 cost at most twice what 1,000 do.
- ``webhook ingest routed by number, … (…)``: webhooks posted (64 callers) to the integration's
  URL without an installation token, each routed by its ``to`` among 100,000 numbers of 10,000
  installations: one number over and over, and a random one each time. The target: random
  numbers at least 0.9× the rate of one.
- ``subscriber resuming 1,000,000 events back (…)``: ``StreamEvents`` from the earliest of
  a log of 1,000,000 events, until 300,000 are read. The target: at least 20,000 a second.
- ``filtered event read, N events in the log (…)``: ``ListEvents`` of one organisation whose
  100 events are spread through a log of 10,000 and of 1,000,000 events (4 callers). The target:
  the same rate (at least 0.9×) however long the log.

- ``msgbridge SendMessage (full path)``, ``webhook ingest (msgbridge serve)`` and ``POST →
  subscriber at 1,000/s`` as ``make bench`` measures them, each ``(store)`` and ``(store) (grown
  store)``: the second on a store that first holds 1,000 organisations' 10,000 installations
  with 100,000 numbers, 1,000,000 events and 1,000,000 sent messages (``GROWN_EVENTS``,
  ``GROWN_MESSAGES``). The targets: the grown store's rates at least 0.9×, its p99 at most
  1.5× the empty store's.

Each on SQLite and on PostgreSQL.

The two rows a target compares (empty and grown store, one number and random numbers, the short
log and the long one) are measured in turn, three rounds each against servers running side by
side, and each row reports its median round (``_Pairs``): measured one after the other, a slow
spell of this shared machine fell on one row of a pair and moved its ratio by ±25 %.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import open_store
from server.config import Settings
from server.core._ids import new_id
from server.store import (
    InboundEventType,
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NewEvent,
    NumberAssignment,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)

from ._harness import (
    BenchEnv,
    Benchmark,
    Result,
    measure,
    result_of,
    servers_cpu_s,
)
from ._turns import ROUNDS, median_round
from .inbound import (
    HEADERS,
    post_at_steady_rate,
    post_to_subscriber_delay,
    post_webhooks,
    stream_from_earliest,
    webhook_body,
)
from .service import running_service, send_messages

__all__ = [
    "GROWN",
    "GROWN_SERVICE_ROWS",
    "RESUME_NAMES",
    "events_read_name",
    "grown_name",
    "listing_name",
    "retention_name",
    "routing_name",
]

#: Old webhook requests in the store, each with an event and a dedupe key.
HISTORY = int(os.environ.get("MSGBRIDGE_BENCH_HISTORY", "350000"))
_LOAD_BATCH = 2_000
_RATE = 1_000
_SECONDS = 12.0
_PURGE_AFTER_S = 0.5


def listing_name(store: str, installations: int) -> str:
    return f"listing installations page by page, {installations:,} installations ({store})"


def events_read_name(store: str, events: int) -> str:
    return f"filtered event read, {events:,} events in the log ({store})"


def routing_name(store: str, random_numbers: bool) -> str:
    which = "a random one of 100,000" if random_numbers else "one number"
    return f"webhook ingest routed by number, {which} ({store})"


def retention_name(store: str, purging: bool) -> str:
    what = "old rows purged" if purging else "old rows kept"
    return f"webhook ingest at 1,000/s, {what} ({store})"


def _history(
    count: int, start: int, *, org: str = "old-org", events_each: int = 1, keyed: bool = True
) -> list[tuple[WebhookRequestRecord, list[NewEvent]]]:
    """``count`` matched requests from two days ago onwards, each with ``events_each`` events
    of organisation ``org`` (the first with a dedupe key when ``keyed``)."""
    base = datetime.now(UTC) - timedelta(days=2)
    made = []
    for n in range(start, start + count):
        received = base + timedelta(milliseconds=n)
        request = WebhookRequestRecord(
            id=f"{org}-{n:09d}",
            received_at=received,
            integration_id="bench",
            installation_id="old-installation",
            method="POST",
            path="/webhooks/bench",
            query="",
            headers=(("Content-Type", "application/json"),),
            body=b'{"id": "old-%d", "from": "+15557654321", "to": "+15550001111"}' % n,
            content_type="application/json",
            outcome=WebhookOutcome.MATCHED,
            reason="",
        )
        events = [
            NewEvent(
                type=str(InboundEventType.MESSAGE),
                org_id=org,
                installation_id="old-installation",
                integration_id="bench",
                users=("101",),
                from_number="+15557654321",
                to_number="+15550001111",
                text=f"old message {n}.{e}",
                media_urls=(),
                provider_message_id=f"{org}-{n}.{e}",
                message_id="",
                status="",
                error="",
                metadata={},
                received_at=received,
                request_id=request.id,
                dedupe_key=f"{org}|message|{n}" if keyed and e == 0 else None,
            )
            for e in range(events_each)
        ]
        made.append((request, events))
    return made


async def _load_history(settings: Settings, count: int) -> None:
    store = open_store(settings)
    await store.start()
    try:
        for start in range(0, count, _LOAD_BATCH):
            await store.ingest_many(_history(min(_LOAD_BATCH, count - start), start))
    finally:
        await store.aclose()


async def start_on_history(provider_url: str, database_url: str, purge: bool) -> str:
    """(In a child process.) The service with its sidecar (:func:`running_service`) on a store
    holding ``HISTORY`` old requests; with ``purge``, the purge of all of them starts
    ``_PURGE_AFTER_S`` after the service is up (the bench posts at once), and its counts and
    duration are printed on stderr when it ends."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    await _load_history(Settings(data_dir=data_dir, database_url=database_url), HISTORY)
    server, address = await running_service(provider_url, True, database_url, data_dir=data_dir)
    if purge:
        _PURGES.append(asyncio.get_running_loop().create_task(_purge_history(server.store)))
    return address


async def _purge_history(store: Store) -> None:
    await asyncio.sleep(_PURGE_AFTER_S)
    started = time.perf_counter()
    cut = datetime.now(UTC) - timedelta(days=1)
    counts = await store.purge(
        events_before=cut, requests_before=cut, unmatched_before=cut, dedupe_before=cut
    )
    took = time.perf_counter() - started
    print(f"    purge: {counts} in {took:.1f} s", file=sys.stderr, flush=True)


_PURGES: list[asyncio.Task[None]] = []  # kept: the loop holds only weak references to tasks


async def _ingest_at_steady_rate(benchmark: Benchmark, url: str) -> Result:
    """POST ``_RATE`` webhooks a second for ``_SECONDS``; each POST's latency to its answer."""
    cpu_before = servers_cpu_s()
    posted = await post_at_steady_rate(url, total=int(_RATE * _SECONDS), rate=_RATE)
    return result_of(
        benchmark,
        list(posted.latencies),
        seconds=posted.seconds,
        cpu_before=cpu_before,
        done=int(_RATE * _SECONDS),
        errors=posted.errors,
        first_error=posted.first_error,
    )


def grown_number(n: int) -> str:
    """The ``n``-th number of the grown installations (10 to an installation)."""
    return f"+1666{n:07d}"


def _installation(n: int, now: datetime, numbers: int = 0) -> InstallationRecord:
    return InstallationRecord(
        id=f"grown-{n:06d}",
        org_id=f"org-{n % 1000:04d}",
        integration_id="bench",
        properties={},
        numbers=tuple(
            NumberAssignment(number=grown_number(i), given=grown_number(i), users=("101",))
            for i in range(n * numbers, (n + 1) * numbers)
        ),
        default_region=None,
        enabled=True,
        webhook_token_hash=f"grown-token-{n:06d}",
        subscription_state="not_required",
        subscription_error=None,
        created_at=now,
        updated_at=now,
    )


async def _load_installations(data_dir: Path, database_url: str, count: int, numbers: int) -> None:
    store = open_store(Settings(data_dir=data_dir, database_url=database_url))
    await store.start()
    try:
        now = datetime.now(UTC)
        for start in range(0, count, 200):
            await asyncio.gather(
                *(
                    store.create_installation(_installation(n, now, numbers))
                    for n in range(start, min(count, start + 200))
                )
            )
    finally:
        await store.aclose()


async def start_with_installations(provider_url: str, database_url: str, count: int) -> str:
    """(In a child process.) :func:`running_service` on a store holding ``count`` more
    installations of the bench integration, across 1,000 organisations."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    await _load_installations(data_dir, database_url, count, numbers=0)
    _, address = await running_service(provider_url, False, database_url, data_dir=data_dir)
    return address


async def start_with_numbers(provider_url: str, database_url: str, count: int) -> str:
    """(In a child process.) :func:`running_service` with its sidecar on a store holding
    ``count`` numbers in installations of 10 (:func:`grown_number`); the address of the
    integration's webhook URL without a token, where webhooks are routed by their number."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    await _load_installations(data_dir, database_url, count // 10, numbers=10)
    _, address = await running_service(provider_url, True, database_url, data_dir=data_dir)
    core, url = address.split("|", 1)
    return f"{core}|{url.split('/webhooks/', 1)[0]}/webhooks/bench"


async def start_with_events(provider_url: str, database_url: str, count: int) -> str:
    """(In a child process.) :func:`running_service` on a store whose log holds ``count``
    events of one organisation, and, spread through it, 100 of organisation ``few-org``."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    store = open_store(Settings(data_dir=data_dir, database_url=database_url))
    await store.start()
    try:
        block = count // 100  # events of old-org before each few-org one
        for spot in range(100):
            requests = block // 100  # each with 100 events
            for start in range(0, requests, 20):
                await store.ingest_many(
                    _history(
                        min(20, requests - start),
                        spot * requests + start,
                        events_each=100,
                        keyed=False,
                    )
                )
            await store.ingest_many(_history(1, spot, org="few-org"))
    finally:
        await store.aclose()
    _, address = await running_service(provider_url, False, database_url, data_dir=data_dir)
    return address


#: What the grown store holds besides its installations (10,000, with 100,000 numbers).
GROWN_EVENTS = int(os.environ.get("MSGBRIDGE_BENCH_GROWN_EVENTS", "1000000"))
GROWN_MESSAGES = int(os.environ.get("MSGBRIDGE_BENCH_GROWN_MESSAGES", "1000000"))


def _old_message(n: int, base: datetime) -> MessageRecord:
    """The ``n``-th of the grown store's messages: sent two days ago by a grown installation."""
    at = base + timedelta(milliseconds=n)
    return MessageRecord(
        id=new_id(),
        org_id=f"org-{n % 1000:04d}",
        installation_id=f"grown-{n % 10_000:06d}",
        integration_id="bench",
        kind=MessageKind.SMS,
        from_number=grown_number(n % _NUMBERS),
        to_number=f"+1777{n % 100_000:07d}",
        text=f"old message {n}",
        media_url=None,
        state=MessageState.SENT,
        provider_message_id=f"old-{n}",
        provider_status=200,
        attempts=1,
        error=None,
        metadata={},
        idempotency_key=None,
        request_fingerprint=None,
        reply_json=None,
        created_at=at,
        updated_at=at,
    )


async def start_grown(provider_url: str, database_url: str, grown: bool) -> str:
    """(In a child process.) :func:`running_service` with its sidecar; with ``grown`` on a store
    that first holds 1,000 organisations' 10,000 installations with 100,000 numbers,
    ``GROWN_EVENTS`` events (100 to a request, across the organisations) and ``GROWN_MESSAGES``
    sent messages."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    if grown:
        await _load_installations(data_dir, database_url, _NUMBERS // 10, numbers=10)
        store = open_store(Settings(data_dir=data_dir, database_url=database_url))
        await store.start()
        try:
            for start in range(0, GROWN_EVENTS // 100, 20):
                org = f"org-{start // 20 % 1000:04d}"
                count = min(20, GROWN_EVENTS // 100 - start)
                await store.ingest_many(
                    _history(count, start, org=org, events_each=100, keyed=False)
                )
            base = datetime.now(UTC) - timedelta(days=2)
            for start in range(0, GROWN_MESSAGES, 500):
                end = min(GROWN_MESSAGES, start + 500)
                await asyncio.gather(
                    *(store.claim_message(_old_message(n, base)) for n in range(start, end))
                )
        finally:
            await store.aclose()
    _, address = await running_service(provider_url, True, database_url, data_dir=data_dir)
    return address


#: Measures one row against the address its server answers on.
Measure = Callable[[Benchmark, str], Awaitable[Result]]
#: Starts (or finds) a row's server; its address.
AddressOf = Callable[[BenchEnv, Benchmark], Awaitable[str]]
Run = Callable[[BenchEnv, Benchmark], Awaitable[Result]]


def grown_name(name: str, store: str, grown: bool) -> str:
    """A row of the service on ``store``: ``name (store)``, and ``(grown store)`` after it."""
    return f"{name} ({store})" + (" (grown store)" if grown else "")


async def _send_to(benchmark: Benchmark, address: str) -> Result:
    return await send_messages(benchmark, address.split("|", 1)[0])


async def _ingest_to(benchmark: Benchmark, address: str) -> Result:
    return await post_webhooks(benchmark, address.split("|", 1)[1])


async def _post_to_subscriber(benchmark: Benchmark, address: str) -> Result:
    core, url = address.split("|", 1)
    return await post_to_subscriber_delay(benchmark, url, core, seconds=3.0, rate=1000)


#: How long a service may take to load its store and start.
_LOADING_S = 900.0
_DATABASES: dict[str, str] = {}  # each service's database URL ("" for SQLite), made once

#: The service's rows measured beside the same on the grown store: (name, callers, measure,
#: the figure its target compares).
GROWN_SERVICE_ROWS: tuple[tuple[str, int, Measure, str], ...] = (
    ("msgbridge SendMessage (full path)", 64, _send_to, "rate"),
    ("webhook ingest (msgbridge serve)", 64, _ingest_to, "rate"),
    ("POST → subscriber at 1,000/s", 1, _post_to_subscriber, "p99_ms"),
)


def _service(store: str, grown: bool) -> AddressOf:
    """The address of the one service of ``store`` (grown or not) that every row of it shares,
    started on first use."""

    async def address_of(env: BenchEnv, benchmark: Benchmark) -> str:
        name = grown_name("msgbridge service", store, grown)
        if name not in _DATABASES:  # the service's first row: its database, and its start
            _DATABASES[name] = await env.postgres_database() if store == "PostgreSQL" else ""
        return await env.server(
            name, start_grown, env.fake_url, _DATABASES[name], grown, start_timeout_s=_LOADING_S
        )

    return address_of


async def _list_every_installation(benchmark: Benchmark, address: str) -> Result:
    """Every installation, a page of 100 at a time, over and over for 2 s (once at least); the
    rate is installations listed a second, the latencies are the pages'."""
    pages: list[float] = []
    listed = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        cpu_before = servers_cpu_s()
        started = time.perf_counter()
        while not pages or time.perf_counter() - started < 2.0:
            token = ""
            while True:
                asked = time.perf_counter()
                page = await stub.ListInstallations(
                    gateway_pb2.ListInstallationsRequest(page_size=100, page_token=token)
                )
                pages.append(time.perf_counter() - asked)
                listed += len(page.installations)
                token = page.next_page_token
                if not token:
                    break
        elapsed = time.perf_counter() - started
    return result_of(benchmark, pages, seconds=elapsed, cpu_before=cpu_before, requests=listed)


async def _read_few_events(benchmark: Benchmark, address: str) -> Result:
    request = gateway_pb2.ListEventsRequest(org_id="few-org", page_size=100)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        async def call() -> None:
            page = await stub.ListEvents(request)
            if len(page.events) != 100:
                raise RuntimeError(f"{len(page.events)} events of few-org, not 100")

        return await measure(benchmark, call, warmup=20)


async def _ingest_through_sidecar(benchmark: Benchmark, address: str) -> Result:
    return await _ingest_at_steady_rate(benchmark, address.split("|", 1)[1])


async def _resume_from_the_earliest(benchmark: Benchmark, address: str) -> Result:
    return await stream_from_earliest(benchmark, address, _RESUMED)


def _routed(random_numbers: bool) -> Measure:
    """Webhooks to the integration's URL, each routed by its ``to``: one number over and over,
    or a random one of the 100,000 each time (64 callers, closed loop)."""

    async def measured(benchmark: Benchmark, address: str) -> Result:
        url = address.split("|", 1)[1]
        pick = random.Random(7)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

            async def call() -> None:
                to = grown_number(pick.randrange(_NUMBERS) if random_numbers else 0)
                async with session.post(url, data=webhook_body(to=to), headers=HEADERS) as answer:
                    await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"answered {answer.status}")

            result = await measure(benchmark, call)
        # A webhook no number routes is answered 200 too (kept as unroutable): check that they
        # reached installations (org-0000 has the numbers of every 1,000th).
        core = address.split("|", 1)[0]
        async with grpc.aio.insecure_channel(core) as channel:
            routed = await gateway_pb2_grpc.GatewayStub(channel).ListEvents(
                gateway_pb2.ListEventsRequest(org_id="org-0000", page_size=1)
            )
        if not routed.events:
            raise RuntimeError("no webhook was routed to its number's installation")
        return result

    return measured


def _own_store(store: str, start: Callable[..., Awaitable[str]], arg: object) -> AddressOf:
    """A row's own server: ``start(fake_url, database_url, arg)`` in a child process, on SQLite
    or on a new PostgreSQL database; the address it returns."""

    async def address_of(env: BenchEnv, benchmark: Benchmark) -> str:
        database_url = await env.postgres_database() if store == "PostgreSQL" else ""
        return await env.server(
            benchmark.name, start, env.fake_url, database_url, arg, start_timeout_s=_LOADING_S
        )

    return address_of


def _on_store(
    store: str, start: Callable[..., Awaitable[str]], arg: object, measured: Measure
) -> Run:
    """A benchmark's run: its own server (:func:`_own_store`), then ``measured`` against it."""
    address_of = _own_store(store, start, arg)

    async def run(env: BenchEnv, benchmark: Benchmark) -> Result:
        return await measured(benchmark, await address_of(env, benchmark))

    return run


#: The two rows a target compares are measured in turn — A B A B A B, against their servers
#: running side by side, each round half a row's time — and each row reports its median round
#: (by the figure the target compares). A slow spell of this shared machine then falls on both
#: rows rather than on one: measured one after the other, the same code's grown-store ingest on
#: PostgreSQL came out at 0.81× in one run and 1.30× in the next. The rounds, and the choice of
#: the median round, are those of the rows ``make bench`` compares (``tests/bench/_turns.py``).


class _Row(NamedTuple):
    """What one row of a pair measures: its server, and the measurement."""

    address_of: AddressOf
    measured: Measure


class _Pairs:
    """Rows measured in pairs (:data:`ROUNDS`). A pair's first row measures both and keeps the
    second's result; the second row, which the harness runs next, reports it."""

    def __init__(self) -> None:
        self._kept: dict[str, Result] = {}

    def first(self, row: _Row, second: str, second_row: _Row, figure: str) -> Run:
        """The first row's run; ``second`` is the other row's name."""

        async def run(env: BenchEnv, benchmark: Benchmark) -> Result:
            benchmarks = (benchmark, replace(benchmark, name=second))
            rows = (row, second_row)
            addresses = [await r.address_of(env, b) for r, b in zip(rows, benchmarks, strict=True)]
            rounds: tuple[list[Result], list[Result]] = ([], [])
            for _ in range(ROUNDS):
                for b, r, address, kept in zip(benchmarks, rows, addresses, rounds, strict=True):
                    share = replace(b, time_cap_s=b.time_cap_s / 2, count=b.count // 2)
                    kept.append(await r.measured(share, address))
            self.keep(second, median_round(rounds[1], figure))
            return median_round(rounds[0], figure)

        return run

    def keep(self, name: str, result: Result) -> None:
        """Keep row ``name``'s result, measured with its pair's first row, for it to report."""
        self._kept[name] = result

    def second(self, row: _Row) -> Run:
        """The second row's run: the result its pair kept (measured alone when there is none)."""

        async def run(env: BenchEnv, benchmark: Benchmark) -> Result:
            kept = self._kept.pop(benchmark.name, None)
            if kept is not None:
                return kept
            return await row.measured(benchmark, await row.address_of(env, benchmark))

        return run


_PAIRS = _Pairs()


def _retention_pair(store: str) -> tuple[Benchmark, Benchmark]:
    """The retention rows, old rows kept and old rows purged, measured in turn for
    :data:`ROUNDS` rounds; each reports its median round by p99. A purge happens once, so each
    purged round has a server of its own, loaded afresh and stopped once measured; the kept
    rounds share one. Single runs of this pair gave 0.92x to 5.48x on the same code
    (docs/operations.md, "Sizing")."""
    kept, purged = retention_name(store, False), retention_name(store, True)
    kept_address_of = _own_store(store, start_on_history, False)
    purged_row = _Row(_own_store(store, start_on_history, True), _ingest_through_sidecar)

    async def run(env: BenchEnv, benchmark: Benchmark) -> Result:
        kept_at = await kept_address_of(env, benchmark)
        rounds: tuple[list[Result], list[Result]] = ([], [])
        for n in range(1, ROUNDS + 1):
            rounds[0].append(await _ingest_through_sidecar(benchmark, kept_at))
            # A server of its own per round: the name a server is started (and stopped) by.
            server = replace(benchmark, name=f"{purged} #{n}")
            purged_at = await purged_row.address_of(env, server)
            measured = await _ingest_through_sidecar(replace(benchmark, name=purged), purged_at)
            rounds[1].append(measured)
            await env.stop_server(server.name)
        for name, results in zip((kept, purged), rounds, strict=True):
            shown = ", ".join(f"{result['p99_ms']} ms" for result in results)
            print(f"    {name}: p99 of each round {shown}", file=sys.stderr, flush=True)
        _PAIRS.keep(purged, median_round(rounds[1], "p99_ms"))
        return median_round(rounds[0], "p99_ms")

    return (
        Benchmark(name=kept, concurrency=1, run=run, alone=True),
        Benchmark(name=purged, concurrency=1, run=_PAIRS.second(purged_row), alone=True),
    )


def _pair(
    first: tuple[str, _Row], second: tuple[str, _Row], figure: str = "rate", **shared: Any
) -> tuple[Benchmark, Benchmark]:
    """The two rows of a pair, each a (name, what it measures); ``shared``: the benchmark fields
    they have in common (concurrency, count, alone)."""
    (name, row), (other, other_row) = first, second
    return (
        Benchmark(name=name, run=_PAIRS.first(row, other, other_row, figure), **shared),
        Benchmark(name=other, run=_PAIRS.second(other_row), **shared),
    )


_STORES = ("SQLite", "PostgreSQL")


#: Numbers in the routing benchmarks' store.
_NUMBERS = 100_000
#: How many events the resumed subscriber reads from the earliest of 1,000,000.
_RESUMED = 300_000
RESUME_NAMES = {
    store: f"subscriber resuming 1,000,000 events back, {_RESUMED:,} read ({store})"
    for store in _STORES
}


def _routing_row(store: str, *, random_numbers: bool) -> tuple[str, _Row]:
    """Routing by number among ``_NUMBERS``: one number over and over, or a random one."""
    address_of = _own_store(store, start_with_numbers, _NUMBERS)
    return routing_name(store, random_numbers), _Row(address_of, _routed(random_numbers))


def _events_read_row(store: str, count: int) -> tuple[str, _Row]:
    """One organisation's events read from a log of ``count`` events."""
    address_of = _own_store(store, start_with_events, count)
    return events_read_name(store, count), _Row(address_of, _read_few_events)


GROWN: list[Benchmark] = [
    *(
        row
        for store in _STORES
        for name, callers, measured, figure in GROWN_SERVICE_ROWS
        for row in _pair(
            (grown_name(name, store, False), _Row(_service(store, False), measured)),
            (grown_name(name, store, True), _Row(_service(store, True), measured)),
            figure,
            concurrency=callers,
        )
    ),
    *(row for store in _STORES for row in _retention_pair(store)),
    *(
        Benchmark(
            name=listing_name(store, count),
            concurrency=1,
            run=_on_store(store, start_with_installations, count, _list_every_installation),
            alone=True,
        )
        for store in _STORES
        for count in (1_000, 10_000)
    ),
    *(
        row
        for store in _STORES
        for row in _pair(
            _routing_row(store, random_numbers=False),
            _routing_row(store, random_numbers=True),
            concurrency=64,
            alone=True,
        )
    ),
    *(
        Benchmark(
            name=RESUME_NAMES[store],
            concurrency=1,
            run=_on_store(store, start_with_events, 1_000_000, _resume_from_the_earliest),
            alone=True,
        )
        for store in _STORES
    ),
    *(
        row
        for store in _STORES
        for row in _pair(
            _events_read_row(store, 10_000),
            _events_read_row(store, 1_000_000),
            concurrency=4,
            count=4_000,
            alone=True,
        )
    ),
]
