"""(ext) What the schema cannot say about a definition's ``Media`` (docs/format.md, "Media"): the
form of its hosts and content types, its caps taken together, and credentials that go nowhere.
(A placeholder of its own auth that names no property is the placeholder check's: the scope
``Media auth`` of :mod:`._variables`.)

Like :mod:`._checks`, each function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

from ._errors import Problem
from ._media import content_type_pattern_problem, host_pattern_problem
from ._media_resolve import MEDIA_ID
from ._placeholders import placeholders_in
from ._pointer import child
from ._variables import (
    MEDIA_RESOLVE,
    map_captures,
    media_resolve,
    model_captures,
    tree_strings,
    webhook_models,
)

__all__ = [
    "MEDIA_CHECKS",
    "check_media_auth",
    "check_media_caps",
    "check_media_patterns",
    "check_media_resolve",
]


def _media(document: Mapping[str, Any]) -> Mapping[str, Any]:
    media = document.get("Media")
    return media if isinstance(media, Mapping) else {}


def check_media_patterns(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Each ``hosts`` entry is a host name or ``*.`` and a domain; each ``content_types`` entry
    ``type/subtype`` or ``type/*``."""
    media = _media(document)
    for key, problem_of in (
        ("hosts", host_pattern_problem),
        ("content_types", content_type_pattern_problem),
    ):
        entries = media.get(key)
        for i, entry in enumerate(entries if isinstance(entries, list) else ()):
            if not isinstance(entry, str) or not entry:
                continue  # the schema says what is wrong
            why = problem_of(entry)
            if why is not None:
                yield Problem(
                    pointer=child(f"/Media/{key}", i),
                    message=f'"{entry}" is not a {key} entry: {why}',
                )


def check_media_caps(document: Mapping[str, Any]) -> Iterator[Problem]:
    """All of a message's media can never be less than one of its files."""
    media = _media(document)
    item, message = media.get("max_item_bytes"), media.get("max_message_bytes")
    if not (_is_integer(item) and _is_integer(message)) or message >= item:
        return
    yield Problem(
        pointer="/Media/max_message_bytes",
        message=f"a message's media may be {message} bytes in all, less than one file's "
        f"max_item_bytes ({item}): one file is part of its message, so max_message_bytes must "
        "be at least max_item_bytes",
    )


def check_media_auth(document: Mapping[str, Any]) -> Iterator[Problem]:
    """``"api"`` needs the definition's own auth, and ``hosts`` says where credentials go: both
    do nothing on their own."""
    media = _media(document)
    auth = media.get("auth", "none")
    if auth == "api" and "auth" not in document and "OAuth2" not in document:
        yield Problem(
            pointer="/Media/auth",
            message='"api" fetches media with the credentials of the definition\'s requests, but '
            "it has neither auth nor OAuth2: media is fetched without credentials",
            severity="warning",
        )
    if auth == "none" and "hosts" in media:
        yield Problem(
            pointer="/Media/hosts",
            message="hosts says where media credentials may go, but auth gives none "
            '("none", the default): give auth, or leave hosts out',
            severity="warning",
        )


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _names(tree: object, at: str) -> set[str]:
    """The placeholder names in a template tree."""
    return {p.name for t in tree_strings(tree, at, MEDIA_RESOLVE) for p in placeholders_in(t.text)}


def check_media_resolve(document: Mapping[str, Any]) -> Iterator[Problem]:
    """(ext) docs/format.md, "Media given as an id": a model that names files by id needs
    ``Media.resolve``; a resolve must use the id, and its request's captures are for
    ``download``."""
    resolve = media_resolve(document.get("Media"))
    if resolve is None:
        for i, model in webhook_models(document):
            if MEDIA_ID in model_captures(i, model):
                yield Problem(
                    pointer=f"/Webhook/{i}/request_parameters",
                    message=f"the model captures ${MEDIA_ID}$, a file given as an id, but the "
                    "definition has no Media resolve to find the file by its id: add "
                    '"Media": {"resolve": {...}}',
                )
        return
    download = _names(resolve.get("download"), "/Media/resolve/download")
    used = download | set().union(
        *(
            _names(resolve.get(key), f"/Media/resolve/{key}")
            for key in ("request_url", "request_parameters", "request_query", "request_headers")
        )
    )
    if MEDIA_ID not in used:
        yield Problem(
            pointer="/Media/resolve",
            message=f"neither the resolve request nor download uses ${MEDIA_ID}$: every file "
            "would be found at the same place",
        )
    if "request_url" not in resolve:
        return
    unused = sorted(map_captures(resolve) - download)
    if unused:
        shown = ", ".join(f"${name}$" for name in unused)
        yield Problem(
            pointer="/Media/resolve/response_map",
            message=f"{shown}: captured but not used by download",
            severity="warning",
        )


MEDIA_CHECKS = (check_media_patterns, check_media_caps, check_media_auth, check_media_resolve)
