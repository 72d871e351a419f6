"""The MMS files of a run: what the recording provider serves at each media URL, and what the
gateway must have made of it (docs/media.md, "Inbound files").

A media URL is ``<provider>/media/<kind>-<tag>``; its answer depends on the name alone, so that a
provider killed and restarted serves the same file again, and the checks know each file's bytes
without asking anyone. The kinds:

- ``ok``: a small PNG (a few KB), answered at once — kept;
- ``slow``: the same, answered after :data:`SLOW_S` (under the fetch timeout) — kept;
- ``gone``: 404 — the event carries ``FETCH_REFUSED``;
- ``big``: a PNG over :data:`MAX_ITEM_BYTES` (the replicas' cap) — ``MEDIA_TOO_LARGE``;
- ``down``: 503 every time — retried until the wait ends, then ``FETCH_FAILED``.

A file that can be kept may also end ``FETCH_FAILED`` when the provider was down for the last
attempt (a SIGKILL of the provider), as may any kind: what matters is that the event came, once,
with each file kept or its error.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Final

from ._webhooks import webhook_body

__all__ = [
    "FETCHABLE",
    "KINDS",
    "MAX_ITEM_BYTES",
    "SLOW_S",
    "MediaFile",
    "MmsPlan",
    "kind_of",
    "media_file",
]

# The replicas' media_max_item_bytes in a run; a `big` file is over it.
MAX_ITEM_BYTES: Final = 64 * 1024
SLOW_S: Final = 0.8
# Kind → share of the media URLs.
KINDS: Final = {"ok": 0.65, "slow": 0.1, "gone": 0.1, "big": 0.1, "down": 0.05}
# The kinds whose files are kept unless the provider is down.
FETCHABLE: Final = frozenset({"ok", "slow"})
_PNG_HEAD: Final = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaFile:
    """The provider's answer to a media URL."""

    status: int
    body: bytes = b""
    delay_s: float = 0.0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def kind_of(url: str) -> str:
    """The kind of the file at ``url`` (a name that is not one of ours: ``""``)."""
    name = url.rsplit("/media/", 1)[-1]
    kind = name.split("-", 1)[0]
    return kind if kind in KINDS and "/media/" in url else ""


def _png(name: str, size: int) -> bytes:
    block = hashlib.sha256(name.encode()).digest()
    return (_PNG_HEAD + block * (size // len(block) + 1))[:size]


def media_file(name: str) -> MediaFile:
    """What ``GET /media/<name>`` is answered with."""
    kind = name.split("-", 1)[0]
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    if kind == "ok":
        return MediaFile(status=200, body=_png(name, 1000 + seed % 7000))
    if kind == "slow":
        return MediaFile(status=200, body=_png(name, 1000 + seed % 7000), delay_s=SLOW_S)
    if kind == "big":
        return MediaFile(status=200, body=_png(name, MAX_ITEM_BYTES + 1 + seed % 4096))
    if kind == "down":
        return MediaFile(status=503)
    return MediaFile(status=404)


@dataclass(eq=False, kw_only=True)
class MmsPlan:
    """Which webhooks of a run are MMS (``every``: about one in that many) and their media URLs
    (one or two, of random kinds) on the provider at ``base_url``."""

    base_url: str
    every: int = 5
    rng: random.Random = field(default_factory=random.Random)
    # Provider message id → its media URLs: every MMS webhook posted.
    urls: dict[str, list[str]] = field(default_factory=dict)

    def body(self, provider_id: str, n: int) -> bytes:
        """A webhook's body: an SMS, or an MMS with ``media`` (recorded in :attr:`urls`)."""
        if self.every <= 0 or self.rng.randrange(self.every) != 0:
            return webhook_body(provider_id, n)
        kinds = self.rng.choices(
            list(KINDS), weights=list(KINDS.values()), k=self.rng.choice((1, 2))
        )
        urls = [f"{self.base_url}/media/{kind}-{provider_id}-{i}" for i, kind in enumerate(kinds)]
        self.urls[provider_id] = urls
        message = json.loads(webhook_body(provider_id, n))
        return json.dumps({**message, "media": urls}).encode()
