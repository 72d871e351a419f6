"""The MMS checks of the reliability run catch what they are meant to catch."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping

from msgbridge.v1 import gateway_pb2

from ._media_checks import mms_files_kept_or_failed, mms_released_once, no_media_holds_left
from ._media_files import MAX_ITEM_BYTES, MmsPlan, kind_of, media_file

E = gateway_pb2.Event
BASE = "http://127.0.0.1:9"
OK, GONE, BIG, DOWN = (
    f"{BASE}/media/{k}-wh-1-{i}" for i, k in enumerate(("ok", "gone", "big", "down"))
)


def _kept(url: str) -> gateway_pb2.MediaItem:
    file = media_file(url.rsplit("/media/", 1)[1])
    return gateway_pb2.MediaItem(
        original_url=url, media_id=f"m-{url}", sha256=file.sha256, size=len(file.body)
    )


def _failed(url: str, error: str) -> gateway_pb2.MediaItem:
    return gateway_pb2.MediaItem(original_url=url, error=f"{error}: why")


def _mms(provider_id: str, *media: gateway_pb2.MediaItem, kind: int = E.MMS) -> gateway_pb2.Event:
    return gateway_pb2.Event(
        type=kind,  # type: ignore[arg-type]
        provider_message_id=provider_id,
        media_urls=[m.original_url for m in media],
        media=media,
    )


def _never_down(provider_id: str) -> bool:
    return False


def test_the_files_are_what_their_names_say() -> None:
    assert media_file("ok-wh-1-0") == media_file("ok-wh-1-0")  # the same after a restart
    assert media_file("ok-wh-1-0").body != media_file("ok-wh-1-1").body
    assert media_file("ok-wh-1-0").body.startswith(b"\x89PNG")
    assert len(media_file("big-wh-1-0").body) > MAX_ITEM_BYTES
    assert media_file("slow-wh-1-0").delay_s > 0
    assert (media_file("gone-x").status, media_file("down-x").status) == (404, 503)
    assert [kind_of(u) for u in (OK, GONE, f"{BASE}/other/ok-1", f"{BASE}/media/odd-1")] == [
        "ok",
        "gone",
        "",
        "",
    ]


def test_a_plan_makes_about_one_mms_in_every_and_notes_their_urls() -> None:
    plan = MmsPlan(base_url=BASE, every=3, rng=random.Random(7))
    bodies = [json.loads(plan.body(f"wh-{n}", n)) for n in range(300)]
    mms = [b for b in bodies if "media" in b]
    assert 60 < len(mms) < 140
    assert {b["id"]: b["media"] for b in mms} == plan.urls
    assert all(1 <= len(urls) <= 2 and all(kind_of(u) for u in urls) for urls in plan.urls.values())
    none = MmsPlan(base_url=BASE, every=0)
    assert "media" not in json.loads(none.body("wh-0", 0)) and not none.urls


def test_an_mms_lost_doubled_late_unseen_or_not_mms_fails() -> None:
    urls = {"a": [OK], "b": [GONE]}
    acked = {"a": 10.0, "b": 11.0}
    events = [_mms("a", _kept(OK)), _mms("b", _failed(GONE, "FETCH_REFUSED"))]
    seen = {"a": 12.0, "b": 30.0}
    good = mms_released_once(urls, acked, events, seen, bound_s=20)
    assert good.ok and good.counts["released"] == 2 and good.counts["slowest s"] == 19
    lost = mms_released_once(urls, acked, events[:1], seen, bound_s=20)
    assert not lost.ok and lost.counts["lost"] == 1 and lost.examples == ["b"]
    doubled = mms_released_once(urls, acked, [*events, events[0]], seen, bound_s=20)
    assert not doubled.ok and doubled.counts["doubled"] == 1
    late = mms_released_once(urls, acked, events, seen, bound_s=10)
    assert not late.ok and late.counts["late"] == 1
    unseen = mms_released_once(urls, acked, events, {"a": 12.0}, bound_s=20)
    assert not unseen.ok and unseen.counts["never seen by the watcher"] == 1
    sms = [_mms("a", _kept(OK), kind=E.MESSAGE), events[1]]
    assert not mms_released_once(urls, acked, sms, seen, bound_s=20).ok
    # One never acknowledged may be missing; nothing acknowledged at all proves nothing.
    assert mms_released_once(urls, {"a": 10.0}, events[:1], seen, bound_s=20).ok
    assert not mms_released_once(urls, {}, [], {}, bound_s=20).ok


def test_each_file_must_be_kept_with_the_providers_bytes_or_carry_its_error() -> None:
    urls = {"a": [OK, GONE], "b": [BIG], "c": [DOWN]}
    kept = _kept(OK)
    events = [
        _mms("a", kept, _failed(GONE, "FETCH_REFUSED")),
        _mms("b", _failed(BIG, "MEDIA_TOO_LARGE")),
        _mms("c", _failed(DOWN, "FETCH_FAILED")),
    ]
    read_back = {kept.media_id: kept.sha256}
    good = mms_files_kept_or_failed(urls, events, read_back, _never_down)
    assert good.ok, good.line()
    assert good.counts["files"] == 4 and good.counts["kept and read back"] == 1

    def check(*a: gateway_pb2.MediaItem, stored: Mapping[str, str | None] = read_back) -> str:
        result = mms_files_kept_or_failed({"a": [OK, GONE]}, [_mms("a", *a)], stored, _never_down)
        assert not result.ok
        return result.examples[0]

    refused = _failed(GONE, "FETCH_REFUSED")
    assert "GetMedia's bytes differ" in check(kept, refused, stored={kept.media_id: "0" * 64})
    assert "GetMedia failed" in check(kept, refused, stored={kept.media_id: None})
    wrong_sha = gateway_pb2.MediaItem()
    wrong_sha.CopyFrom(kept)
    wrong_sha.sha256 = hashlib.sha256(b"other").hexdigest()
    assert "wrong SHA-256" in check(wrong_sha, refused)
    assert "neither" in check(kept, gateway_pb2.MediaItem(original_url=GONE))
    assert "unexpected MEDIA_TOO_LARGE" in check(kept, _failed(GONE, "MEDIA_TOO_LARGE"))
    assert "items" in check(kept)  # one item for two URLs
    assert "kept a gone file" in check(kept, _kept(GONE))


def test_a_file_that_could_be_kept_may_fail_only_while_the_provider_was_down() -> None:
    urls = {"a": [OK]}
    events = [_mms("a", _failed(OK, "FETCH_FAILED"))]
    assert not mms_files_kept_or_failed(urls, events, {}, _never_down).ok
    allowed = mms_files_kept_or_failed(urls, events, {}, lambda p: p == "a")
    assert allowed.ok and allowed.counts["error FETCH_FAILED"] == 1


def test_a_hold_left_fails() -> None:
    assert no_media_holds_left(0).ok
    assert not no_media_holds_left(2).ok
