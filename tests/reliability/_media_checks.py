"""The MMS invariants of a run (issue 17's acceptance; docs/media.md, "Inbound files"), pure
functions of what was recorded, each with its counts:

- every acknowledged MMS webhook has exactly one event, an MMS, released within a bound of its
  acknowledgement (the wait for its files, a killed replica's lease, a margin);
- each of its files is kept — the bytes ``GetMedia`` returns have the item's SHA-256, which is
  that of the provider's file — or carries an error its URL can have;
- no hold is left in the store.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence

from msgbridge.v1 import gateway_pb2

from ._invariants import Invariant
from ._media_files import FETCHABLE, kind_of, media_file

__all__ = ["mms_files_kept_or_failed", "mms_released_once", "no_media_holds_left"]

# The error (its code, docs/media.md) each kind of file ends with when it is not kept; any file
# may also end FETCH_FAILED when the provider was down while its message waited.
_EXPECTED_ERROR = {"gone": "FETCH_REFUSED", "big": "MEDIA_TOO_LARGE", "down": "FETCH_FAILED"}
_READ_BACK = "kept and read back"


def _first(events: Iterable[gateway_pb2.Event]) -> dict[str, gateway_pb2.Event]:
    first: dict[str, gateway_pb2.Event] = {}
    for event in events:
        first.setdefault(event.provider_message_id, event)
    return first


def mms_released_once(
    urls: Mapping[str, Sequence[str]],
    acknowledged_at: Mapping[str, float],
    events: Sequence[gateway_pb2.Event],
    first_seen: Mapping[str, float],
    bound_s: float,
) -> Invariant:
    """Each acknowledged MMS webhook (``urls``: provider message id → its media URLs, every MMS
    posted; ``acknowledged_at``: id → when answered 2xx, every webhook) has exactly one event in
    the log (``events``), an MMS, first seen (``first_seen``: id → when a reader of the log first
    had it) at most ``bound_s`` after its acknowledgement."""
    acked = [p for p in urls if p in acknowledged_at]
    per_id = collections.Counter(e.provider_message_id for e in events)
    first = _first(events)
    lost = [p for p in acked if per_id[p] == 0]
    doubled = [p for p in urls if per_id[p] > 1]
    not_mms = [p for p in acked if p in first and first[p].type != gateway_pb2.Event.MMS]
    delays = {p: first_seen[p] - acknowledged_at[p] for p in acked if p in first_seen}
    unseen = [p for p in acked if per_id[p] and p not in first_seen]
    late = [p for p, d in delays.items() if d > bound_s]
    return Invariant(
        name=f"exactly one event per acknowledged MMS, released within {bound_s:.0f} s",
        ok=bool(acked) and not (lost or doubled or not_mms or unseen or late),
        counts={
            "MMS posted": len(urls),
            "acknowledged": len(acked),
            "released": len(acked) - len(lost),
            "lost": len(lost),
            "doubled": len(doubled),
            "not MMS": len(not_mms),
            "never seen by the watcher": len(unseen),
            "late": len(late),
            "slowest s": round(max(delays.values(), default=0.0)),
        },
        examples=sorted(lost + doubled + not_mms + unseen + late)[:5],
    )


def mms_files_kept_or_failed(
    urls: Mapping[str, Sequence[str]],
    events: Sequence[gateway_pb2.Event],
    stored: Mapping[str, str | None],
    provider_down: Callable[[str], bool],
) -> Invariant:
    """Each MMS event's ``media`` has one item per URL of its webhook, in order, and each item
    either has a ``media_id`` — of a file that can be kept, whose bytes (``stored``: media id →
    SHA-256 of what ``GetMedia`` returned, None when it failed) have the item's SHA-256 and size,
    those of the provider's file — or an error its kind can end with (``FETCH_FAILED`` for any
    file while the provider was down, ``provider_down(id)``)."""
    first = _first(events)
    outcomes: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    files = 0
    for provider_id, posted in urls.items():
        event = first.get(provider_id)
        if event is None:
            continue  # lost: mms_released_once says so
        if [m.original_url for m in event.media] != list(posted):
            outcomes["items not matching the URLs"] += 1
            wrong.append(f"{provider_id}: items")
            continue
        for item in event.media:
            files += 1
            outcome = _outcome(item, stored, provider_down(provider_id))
            outcomes[outcome] += 1
            if outcome != _READ_BACK and not outcome.startswith("error "):
                wrong.append(f"{item.original_url.rsplit('/', 1)[-1]}: {outcome}")
    counts = {"files": files, **dict(sorted(outcomes.items()))}
    return Invariant(
        name="every MMS file kept (GetMedia's bytes match the provider's) or its error recorded",
        ok=files > 0 and not wrong,
        counts=counts,
        examples=wrong,
    )


def _outcome(item: gateway_pb2.MediaItem, stored: Mapping[str, str | None], down: bool) -> str:
    kind = kind_of(item.original_url)
    if item.media_id:
        if kind not in FETCHABLE:
            return f"kept a {kind or 'foreign'} file"
        file = media_file(item.original_url.rsplit("/media/", 1)[1])
        if (item.sha256, item.size) != (file.sha256, len(file.body)):
            return "kept with the wrong SHA-256 or size"
        got = stored.get(item.media_id)
        if got is None:
            return "kept but GetMedia failed"
        if got != item.sha256:
            return "GetMedia's bytes differ"
        return _READ_BACK
    code = item.error.split(":", 1)[0]
    if not code:
        return "neither kept nor an error"
    if code == _EXPECTED_ERROR.get(kind) or (code == "FETCH_FAILED" and down):
        return f"error {code}"
    return f"unexpected {code} for a {kind or 'foreign'} file"


def no_media_holds_left(holds: int) -> Invariant:
    """Nothing is held at the end: every held message was released (``holds``: the rows of
    ``media_holds``)."""
    return Invariant(
        name="no media hold left in the store",
        ok=holds == 0,
        counts={"media holds": holds},
    )
