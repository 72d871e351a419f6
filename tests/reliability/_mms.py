"""MMS in the reliability run (issue 17's acceptance; docs/media.md): the replicas' media
settings, a watcher of the log that notes when each MMS event appears, and the checks at the end.

The replicas keep files in one bucket of moto's S3 server (:class:`tests.reliability._processes
.MotoProcess`); an MMS webhook's message is held in the webhook's transaction and fetched by any
replica from the recording provider (:mod:`tests.reliability._media_files`), while replicas,
sidecars and — in the queued phase — the provider are SIGKILLed. At the end: every acknowledged
MMS has one event, released in time; every file is kept, read back by ``GetMedia`` with the
provider's SHA-256, or carries its error; ``media_holds`` is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import grpc

from msgbridge.v1 import gateway_pb2

from ._chaos import Kill
from ._cluster import ORG, Cluster
from ._invariants import Invariant
from ._log import read_events
from ._media_checks import mms_files_kept_or_failed, mms_released_once, no_media_holds_left
from ._media_files import MAX_ITEM_BYTES
from ._waiting import eventually

__all__ = [
    "MEDIA_SETTINGS",
    "RELEASE_BOUND_S",
    "MmsWatcher",
    "check_mms",
    "provider_killed_between",
]

# Short, so that the run ends in minutes: a message waits 15 s for its files; a file's fetch
# times out after 2 s (a `slow` file takes 0.8 s); the cap makes a `big` file MEDIA_TOO_LARGE.
_WAIT_S = 15.0
_FETCH_TIMEOUT_S = 2.0
MEDIA_SETTINGS = (
    "--media-wait-s", str(_WAIT_S),
    "--media-fetch-timeout-s", str(_FETCH_TIMEOUT_S),
    "--media-max-item-bytes", str(MAX_ITEM_BYTES),
)  # fmt: skip
# An MMS is released at most this long after its acknowledgement: the wait, then a killed
# replica's lease of its hold (the fetch timeout per file, two at most, and 5 s: server/core/
# media/_fetcher.py), and a margin for a restart and the watcher's polling.
RELEASE_BOUND_S = _WAIT_S + 2 * _FETCH_TIMEOUT_S + 5.0 + 10.0
_POLL_S = 0.25


@dataclass(eq=False, kw_only=True)
class MmsWatcher:
    """Follows the log's MMS events by cursor, from either replica (the other when one fails),
    noting when each provider message id first appears."""

    cluster: Cluster
    first_seen: dict[str, float] = field(default_factory=dict)
    after: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mms-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        index = 0
        while True:
            stub = self.cluster.stub(self.cluster.replicas[index])
            try:
                page = await stub.ListEvents(
                    gateway_pb2.ListEventsRequest(
                        after_cursor=self.after, page_size=500, types=[gateway_pb2.Event.MMS]
                    ),
                    timeout=5,
                )
            except grpc.aio.AioRpcError:
                index = (index + 1) % len(self.cluster.replicas)
                await asyncio.sleep(_POLL_S)
                continue
            now = time.monotonic()
            for event in page.events:
                self.first_seen.setdefault(event.provider_message_id, now)
            if page.events:
                self.after = page.events[-1].cursor
            else:
                await asyncio.sleep(_POLL_S)


def provider_killed_between(
    kills: Iterable[Kill], provider: str, since: Mapping[str, float], until: Mapping[str, float]
) -> Callable[[str], bool]:
    """Whether the provider was down (killed, not yet restarted) at some time between
    ``since[id]`` and ``until[id]`` (until now when it is not there)."""
    downs = [(k.at, k.restarted_at) for k in kills if k.process == provider]

    def down(provider_id: str) -> bool:
        start = since.get(provider_id, 0.0)
        end = until.get(provider_id, time.monotonic())
        return any(at <= end and restarted >= start for at, restarted in downs)

    return down


async def _digest(cluster: Cluster, media_id: str) -> str | None:
    """SHA-256 of the bytes ``GetMedia`` returns for ``media_id`` (either replica), or None."""
    for replica in cluster.replicas:
        digest = hashlib.sha256()
        try:
            async for part in cluster.stub(replica).GetMedia(
                gateway_pb2.GetMediaRequest(org_id=ORG, media_id=media_id), timeout=30
            ):
                if not part.HasField("info"):
                    digest.update(part.chunk)
        except grpc.aio.AioRpcError:
            continue
        return digest.hexdigest()
    return None


async def _digests(cluster: Cluster, media_ids: Sequence[str]) -> dict[str, str | None]:
    slots = asyncio.Semaphore(8)

    async def one(media_id: str) -> tuple[str, str | None]:
        async with slots:
            return media_id, await _digest(cluster, media_id)

    return dict(await asyncio.gather(*(one(m) for m in media_ids)))


async def _holds(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM media_holds")
        return count
    finally:
        await connection.close()


async def check_mms(
    cluster: Cluster,
    *,
    urls: Mapping[str, Sequence[str]],
    acknowledged_at: Mapping[str, float],
    watcher: MmsWatcher,
    kills: Iterable[Kill],
    say: Callable[[str], None],
) -> tuple[list[Invariant], list[str]]:
    """Wait (bounded) until the watcher has every acknowledged MMS, then check; the invariants
    and notes."""
    acked = {p for p in urls if p in acknowledged_at}
    say(f"waiting for {len(acked - set(watcher.first_seen))} of {len(acked)} MMS to be released")
    settled = await eventually(
        lambda: acked <= set(watcher.first_seen), within_s=RELEASE_BOUND_S + 30.0, every_s=0.25
    )
    await watcher.stop()
    notes = [] if settled else ["some acknowledged MMS were never released"]
    events = await read_events(cluster, types=[gateway_pb2.Event.MMS])
    stored = await _digests(
        cluster, sorted({m.media_id for e in events for m in e.media if m.media_id})
    )
    down = provider_killed_between(
        kills, cluster.provider.name, acknowledged_at, watcher.first_seen
    )
    invariants = [
        mms_released_once(urls, acknowledged_at, events, watcher.first_seen, RELEASE_BOUND_S),
        mms_files_kept_or_failed(urls, events, stored, down),
        no_media_holds_left(await _holds(cluster.database_url)),
    ]
    return invariants, notes
