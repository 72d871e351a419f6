"""Inbound media (docs/media.md): an inbound message's files are fetched and kept before its
event is released.

The webhook's transaction holds the event (:class:`~server.store.MediaHold`) instead of
appending it, so the provider's 2xx never waits for a fetch and nothing is lost when the process
dies before one. This worker, in every process, leases due holds, fetches each file through the
outbound client (its policy, the redirect rule, a size cap and a timeout), with the credentials
the definition declares for media, keeps it (:mod:`server.media`), and releases the event with
each file's description. A transient failure (no connection, a timeout, 429 or 5xx) is retried
with backoff until the hold's ``release_by``; then, or at once on a permanent failure, the event
is released with the provider's URL and the file's error.

    loop: due holds (store), as many as there are free fetch slots → lease each → fetch its
          missing files (a task each) → release (store: the event, with the next cursor; the
          hub is woken) or keep the progress and come back after a backoff
          → sleep until the next due hold, a wake-up (a new hold, a slot freed), or ``poll_s``

While there is no time to spare (:class:`LoopLag`: the event loop runs most of its timers late,
as under a burst of webhooks, or its thread is on a processor most of the time), the fetcher only
trickles — one fetch at a time, one started every
``busy_interval_s`` — so that the files never take the loop from the 2xx path; the rest wait in
the store, and are fetched at full concurrency once there is time again.

Only what can be fetched at once is leased: a hold waits in the store, not leased in this
process behind a queue of others, so its lease never runs out before its fetch begins (another
process would take it again), and while every slot is busy a new hold costs the loop nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from ...engine import RenderedRequest, media_id_of
from ...media import BlobStore, BlobTooLarge, SniffedStream, blob_key
from ...metrics import NO_METRICS, Metrics
from ...outbound import (
    ConnectFailed,
    OutboundClient,
    OutboundError,
    OutboundTimeout,
    ProviderResponse,
    TransportError,
)
from ...store import EventMedia, MediaHold, MediaOrigin, MediaRecord, NewEvent, Store
from .._events import EventHub
from ._loop_lag import LoopLag

__all__ = ["MAX_FILES", "FetchRules", "MediaFetcher", "ResolveFailed", "RulesFor"]

logger = logging.getLogger(__name__)

_MAX_REDIRECTS: Final = 5
_RETRY_INITIAL_S: Final = 1.0
_RETRY_MAX_S: Final = 30.0
_LEASE_MARGIN_S: Final = 5.0
# Fewest seconds between two reads of the due holds.
_MIN_READ_INTERVAL_S: Final = 0.05
#: Files of one message fetched at most (an MMS has up to 10; a hostile webhook may name
#: thousands): the others are marked MEDIA_TOO_MANY.
MAX_FILES: Final = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchRules:
    """What applies to one message's files: the caps (the lower of the definition's and the
    gateway's), the allowed content types, and the credentials for a file's URL."""

    max_item_bytes: int
    max_message_bytes: int
    allowed: Callable[[str], bool]
    headers_for: Callable[[str], Awaitable[Mapping[str, str]]]
    #: Keeps a fetch's exchange in the exchange log, masked (None: not kept): the request, the
    #: answer without its body (a file) or the error met, when it started, how long it took.
    keep: (
        Callable[[RenderedRequest, ProviderResponse | OutboundError, datetime, float], None] | None
    ) = None
    #: (ext) The URL of a file given by its provider id (docs/format.md, "Media given as an
    #: id"), found through the definition's ``Media.resolve``; raises :class:`ResolveFailed`.
    #: None: the definition names files by URL only.
    resolve: Callable[[str], Awaitable[str]] | None = None
    #: Masks the installation's secrets in a file's error (a resolved URL may hold one).
    mask: Callable[[str], str] = str


class ResolveFailed(Exception):
    """A file given by id could not be found: ``transient`` when a later try may succeed (no
    connection, a timeout, 429, 5xx). The message is masked and names no resolved URL."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


#: The rules of an event's integration and installation (the service builds them from the
#: definition's ``Media``: docs/format.md).
RulesFor = Callable[[NewEvent], Awaitable[FetchRules]]


class _Transient(Exception):
    """A failure that a later try may not meet (no connection, a timeout, 429, 5xx)."""


class _Permanent(Exception):
    """A failure that will not change (refused by the policy, 404, too large, a type not
    allowed): the file is given up at once."""


def _reason(code: str, detail: str) -> str:
    return f"{code}: {detail}"


class MediaFetcher:
    """Fetches the files of held inbound messages and releases their events."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        outbound: OutboundClient,
        hub: EventHub,
        rules_for: RulesFor,
        owner: str,
        wait_s: float,
        fetch_timeout_s: float,
        concurrency: int = 16,
        busy_interval_s: float = 0.1,
        poll_s: float = 1.0,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._blobs = blobs
        self._outbound = outbound
        self._hub = hub
        self._rules_for = rules_for
        self.owner = owner
        self._wait = timedelta(seconds=wait_s)
        self._fetch_timeout_s = fetch_timeout_s
        self._concurrency = concurrency
        self._busy_interval_s = busy_interval_s
        self._last_start = 0.0  # time.monotonic() of the last fetch started
        self._lag = LoopLag()
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    # --- the ingest side ---------------------------------------------------------------------

    def hold(
        self, events: Sequence[NewEvent], now: datetime
    ) -> tuple[list[NewEvent], list[MediaHold]]:
        """Split ``events``: those with files become holds (fetched, then released), the
        others are appended as they are."""
        kept: list[NewEvent] = []
        holds: list[MediaHold] = []
        for event in events:
            if event.media_urls and event.installation_id:
                holds.append(
                    MediaHold(
                        id=str(uuid.uuid4()),
                        event=event,
                        progress=(),
                        held_at=now,
                        release_by=now + self._wait,
                        next_attempt_at=now,
                    )
                )
            else:
                kept.append(event)
        return kept, holds

    def wake(self) -> None:
        """A hold was written: look for due holds now."""
        self._wake.set()

    # --- the worker --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._lag.start()
            self._task = asyncio.create_task(self._loop(), name="msgbridge-media-fetcher")

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Stop; fetches still running after ``grace_s`` are cancelled (their holds stay leased
        until the lease ends, then any process takes them again)."""
        task, self._task = self._task, None
        self._lag.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running = list(self._running)
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for one in pending:
                one.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run_due(self) -> int:
        """Lease and start due holds, as many as there are free slots; how many were started
        (the loop's step; tests call it directly)."""
        free = self._free_slots()
        if free <= 0:
            return 0
        now = datetime.now(UTC)
        started = 0
        for hold in await self._store.due_media_holds(now, limit=free):
            # The lease outlives a round: each file has its own timeout, fetched one by one.
            files = max(1, min(len(hold.event.media_urls), MAX_FILES))
            lease = timedelta(seconds=self._fetch_timeout_s * files + _LEASE_MARGIN_S)
            leased = await self._store.lease_media_hold(
                hold.id, owner=self.owner, lease_until=now + lease, now=now
            )
            if leased is None:
                continue  # another process took it
            self._last_start = time.monotonic()
            task = asyncio.create_task(self._work(leased), name="msgbridge-media-fetch")
            self._running.add(task)
            task.add_done_callback(self._finished)
            started += 1
        return started

    def _free_slots(self) -> int:
        """How many more fetches may start now: up to ``concurrency`` at once, but while the
        loop is busy (webhooks come first) one at a time, and one per ``busy_interval_s``."""
        if not self._lag.busy:
            return self._concurrency - len(self._running)
        if self._running or time.monotonic() - self._last_start < self._busy_interval_s:
            return 0
        return 1

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A fetch ended: its slot is free for the next due hold."""
        self._running.discard(task)
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            # Wake-ups come with every held webhook: one read of the holds per interval serves
            # them all (a read per webhook cost the ingest path a fifth of its rate).
            await asyncio.sleep(_MIN_READ_INTERVAL_S)
            self._wake.clear()
            next_at = None
            try:
                await self.run_due()
                # With no slot free, a freed slot (or the next round, while the loop is busy)
                # comes back here: nothing to read till then.
                if self._free_slots() > 0:
                    next_at = await self._store.next_media_hold_at()
            except Exception:
                logger.exception("reading the media holds failed; trying again")
            delay = self._poll_s
            if next_at is not None:
                delay = min(delay, max((next_at - datetime.now(UTC)).total_seconds(), 0.0))
            if self._lag.busy and not self._running:
                delay = min(delay, self._busy_interval_s)  # the trickle's next start
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))

    async def _work(self, hold: MediaHold) -> None:
        try:
            await self._fetch_hold(hold)
        except Exception:
            # The lease ends and the hold is taken again: nothing is lost.
            logger.exception("fetching a message's media failed", extra={"hold": hold.id})

    async def _fetch_hold(self, hold: MediaHold) -> None:
        event = hold.event
        rules = await self._rules_for(event)
        progress = list(hold.progress) or [
            EventMedia(original_url=url)
            if index < MAX_FILES
            else EventMedia(
                original_url=url,
                error=_reason("MEDIA_TOO_MANY", f"only the first {MAX_FILES} files are kept"),
            )
            for index, url in enumerate(event.media_urls)
        ]
        budget = rules.max_message_bytes - sum(p.size for p in progress if p.media_id)
        waiting: list[int] = []
        for index, item in enumerate(progress):
            if item.media_id or (item.error and not item.error.startswith("RETRYING")):
                continue
            try:
                stored = await self._fetch_one(event, item.original_url, rules, budget)
            except _Transient as exc:
                progress[index] = replace(item, error=_reason("RETRYING", str(exc)))
                waiting.append(index)
                self._metrics.media_fetch(event.integration_id, "retrying")
                continue
            except _Permanent as exc:
                progress[index] = replace(item, error=str(exc))
                self._metrics.media_fetch(event.integration_id, "failed")
                continue
            self._metrics.media_fetch(event.integration_id, "kept")
            budget -= stored.size
            progress[index] = stored
        now = datetime.now(UTC)
        if not waiting or now >= hold.release_by:
            media = [
                replace(p, error=_reason("FETCH_FAILED", p.error.partition(": ")[2]))
                if p.error.startswith("RETRYING")
                else p
                for p in progress
            ]
            released = await self._store.release_media_hold(hold.id, owner=self.owner, media=media)
            if released is not None:
                self._hub.notify()
                self._metrics.events_appended(event.integration_id, 1)
                logger.info(
                    "message media kept",
                    extra={
                        "integration": event.integration_id,
                        "files": len(media),
                        "failed": sum(1 for p in media if p.error),
                    },
                )
            return
        delay = min(_RETRY_MAX_S, _RETRY_INITIAL_S * 2 ** min(hold.attempts, 10))
        delay *= 0.5 + random.random()  # noqa: S311 (jitter, not a secret)
        next_at = min(now + timedelta(seconds=delay), hold.release_by)
        await self._store.update_media_hold(
            hold.id, owner=self.owner, progress=progress, next_attempt_at=next_at
        )

    @staticmethod
    async def _resolve(url: str, rules: FetchRules) -> str:
        """The URL to fetch: ``url``, or (ext) the file's URL found for a ``media-id:`` entry
        (docs/format.md, "Media given as an id")."""
        media_id = media_id_of(url)
        if media_id is None:
            return url
        if rules.resolve is None:
            raise _Permanent(
                _reason("FETCH_REFUSED", "the definition has no Media resolve for a media id")
            )
        try:
            return await rules.resolve(media_id)
        except ResolveFailed as exc:
            if exc.transient:
                raise _Transient(str(exc)) from None
            raise _Permanent(_reason("FETCH_REFUSED", str(exc))) from None

    async def _fetch_one(
        self, event: NewEvent, url: str, rules: FetchRules, budget: int
    ) -> EventMedia:
        cap = min(rules.max_item_bytes, budget)
        if cap <= 0:
            raise _Permanent(_reason("MEDIA_TOO_LARGE", "the message's files exceed its cap"))
        source = url  # what the event names: the provider's URL, or (ext) media-id:<id>
        url = await self._resolve(url, rules)
        media_id = uuid.uuid4().hex
        key = blob_key(event.org_id, media_id)
        headers = await rules.headers_for(url)
        started_at, started = datetime.now(UTC), time.perf_counter()
        answer: ProviderResponse | OutboundError | None = None
        try:
            async with self._outbound.open_get(
                url,
                headers=headers,
                timeout=self._fetch_timeout_s,
                max_redirects=_MAX_REDIRECTS,
                # (ext) a URL the definition made goes where its requests go: its stand-in
                integration=event.integration_id if url != source else None,
            ) as response:
                answer = ProviderResponse(
                    status=response.status,
                    headers=response.headers,
                    body=b"",
                    elapsed_s=time.perf_counter() - started,
                )
                status = response.status
                if status == 429 or status >= 500:
                    raise _Transient(f"HTTP {status}")
                if status != 200:
                    raise _Permanent(_reason("FETCH_REFUSED", f"HTTP {status}"))
                declared = response.content_length
                if declared is not None and declared > cap:
                    raise _Permanent(_reason("MEDIA_TOO_LARGE", f"{declared} bytes over {cap}"))

                sniffed = SniffedStream(response.content.iter_chunked(64 * 1024))
                stored = await self._blobs.put(key, sniffed, max_size=cap)
        except BlobTooLarge:
            raise _Permanent(_reason("MEDIA_TOO_LARGE", f"more than {cap} bytes")) from None
        except (ConnectFailed, OutboundTimeout, TransportError) as exc:
            answer = exc
            raise _Transient(rules.mask(str(exc))) from None
        except OutboundError as exc:  # refused by the policy, a URL that cannot be called
            answer = exc
            raise _Permanent(_reason("FETCH_REFUSED", rules.mask(str(exc)))) from None
        finally:
            if rules.keep is not None and answer is not None:
                request = RenderedRequest(
                    method="GET", url=url, headers=tuple(headers.items()), body=None
                )
                rules.keep(request, answer, started_at, time.perf_counter() - started)
        content_type = sniffed.content_type
        if not rules.allowed(content_type):
            await self._blobs.delete(key)
            raise _Permanent(_reason("MEDIA_TYPE_NOT_ALLOWED", content_type))
        await self._store.put_media(
            MediaRecord(
                id=media_id,
                org_id=event.org_id,
                installation_id=event.installation_id,
                integration_id=event.integration_id,
                origin=MediaOrigin.INBOUND,
                blob_key=key,
                content_type=content_type,
                size=stored.size,
                sha256=stored.sha256,
                source=source,
                created_at=datetime.now(UTC),
            )
        )
        return EventMedia(
            original_url=source,
            media_id=media_id,
            content_type=content_type,
            size=stored.size,
            sha256=stored.sha256,
        )
