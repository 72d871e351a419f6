"""(ext) Inbound media given as an id (docs/format.md, "Media given as an id"): pure.

Telegram, WhatsApp Cloud API and LINE name an inbound file by an id: the file is found with an
authenticated call first (Telegram's ``getFile``, the Graph API's media id) or is at a URL made
from the id (LINE's content endpoint). A webhook model captures ``$media_id$``; the event names
each such file in ``media_urls`` as ``media-id:<id>`` (:func:`media_id_url`), never by the URL it
is fetched from, which may hold a secret (a Telegram bot token is in its file URLs). The fetcher
renders the definition's ``Media.resolve`` request with the installation's properties and the
id (:func:`render_request`), reads its answer (:func:`read_resolve_answer`) and fetches the file
at :func:`download_url`.

    answer                                            verdict
    2xx, every literal holds                          "resolved", with the captures
    2xx with a failed literal                         "refused" (the provider's ``ok: false``)
    408, 425, 429 or 5xx                              "unavailable": try again later
    any other status                                  "refused"
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ._model import MediaResolve
from ._response import map_response
from ._template import Lookup, Value, captured_names
from ._url import UrlTemplate, compile_url

__all__ = [
    "MEDIA_ID",
    "MEDIA_ID_SCHEME",
    "ResolveAnswer",
    "download_url",
    "media_id_of",
    "media_id_url",
    "read_resolve_answer",
]

#: The webhook variable naming an inbound file by its provider id.
MEDIA_ID: Final = "media_id"
#: How an event's ``media_urls`` names a file given by id (docs/format.md, "Media given as an id").
MEDIA_ID_SCHEME: Final = "media-id:"
_UNAVAILABLE = frozenset({408, 425, 429})


def media_id_url(media_id: str) -> str:
    """The event's ``media_urls`` entry of a file the provider named by ``media_id``."""
    return f"{MEDIA_ID_SCHEME}{media_id}"


def media_id_of(url: str) -> str | None:
    """The provider's id of a ``media-id:`` entry, or None for a URL."""
    if url.startswith(MEDIA_ID_SCHEME) and len(url) > len(MEDIA_ID_SCHEME):
        return url[len(MEDIA_ID_SCHEME) :]
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolveAnswer:
    """A resolve request's outcome: "resolved" with the map's ``captures``, or "refused" /
    "unavailable" with ``reason`` (provider text: the caller masks it)."""

    verdict: Literal["resolved", "refused", "unavailable"]
    captures: Mapping[str, str] = field(default_factory=dict, repr=False)
    reason: str = ""


def read_resolve_answer(
    resolve: MediaResolve, status: int, body: bytes, content_type: str | None
) -> ResolveAnswer:
    """The outcome of ``resolve.request`` answered ``status`` with ``body``."""
    if status >= 500 or status in _UNAVAILABLE:
        return ResolveAnswer(verdict="unavailable", reason=f"HTTP {status}")
    if not 200 <= status < 300:
        return ResolveAnswer(verdict="refused", reason=f"HTTP {status}")
    assert resolve.request is not None
    outcome = map_response(resolve.request.response_map, body, content_type)
    if not outcome.accepted:
        return ResolveAnswer(verdict="refused", reason=outcome.error or outcome.reason or "")
    captures: dict[str, str] = {}
    for name in captured_names(resolve.request.response_map):
        value = outcome.captures.get(name)
        if isinstance(value, tuple):
            value = value[0] if value else None
        if value:
            captures[name] = value
    return ResolveAnswer(verdict="resolved", captures=captures)


def download_url(
    resolve: MediaResolve,
    properties: Mapping[str, Value],
    media_id: str,
    captures: Mapping[str, str],
) -> str:
    """The file's URL: ``download`` rendered with the installation's ``properties``, the id and
    the resolve answer's ``captures`` (each of which, in the path, may be a relative path of
    several segments). Raises :class:`RenderError` when a value cannot make the URL (a capture
    the answer lacked, a host that is not a host, a ``..`` segment)."""
    values: Lookup = {**properties, **captures, MEDIA_ID: media_id}
    return _download(resolve.download).render(values, paths=frozenset(captures))


@functools.lru_cache(maxsize=64)
def _download(template: str) -> UrlTemplate:
    return compile_url(template, "/Media/resolve/download")
