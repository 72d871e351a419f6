"""(ext) Lists of a send rendered item by item, and a file's media kind (docs/format.md, "Lists
of items: $each" and "Media kinds").

An object ``{"$each": "replies", "item": {...}}`` in a send's ``request_parameters`` renders as a
JSON array: the ``item`` template once per item of the list, with the item's own variables
(``$reply_id$``, ``$reply_title$`` …) beside the send's. A list is kept among the send's
variables as one tuple per item variable (``reply_ids``, ``reply_titles`` …, equally long), so
the rendering needs no value type of its own: :data:`LISTS` says which tuple feeds which item
variable. :func:`media_kind` is the rule that names a file's kind from its media type or URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "EACH",
    "ITEM",
    "ITEM_VARIABLES",
    "LISTS",
    "MEDIA_KINDS",
    "ItemList",
    "media_kind",
    "media_kinds",
]

#: The key that makes a template object a list rendered per item, and the item's template.
EACH: Final = "$each"
ITEM: Final = "item"


@dataclass(frozen=True, slots=True)
class ItemList:
    """A list a send may carry: which send has it and where each item variable's values are."""

    name: str
    send: str  # "SendMessage" or "SendFile"
    binds: tuple[tuple[str, str], ...]  # (item variable, the send's list variable), count first

    @property
    def item_variables(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.binds)


LISTS: Final = {
    item.name: item
    for item in (
        ItemList(
            "replies",
            "SendMessage",
            (
                ("reply_id", "reply_ids"),
                ("reply_title", "reply_titles"),
                ("reply_description", "reply_descriptions"),
            ),
        ),
        ItemList(
            "template_parameters", "SendMessage", (("template_parameter", "template_parameters"),)
        ),
        ItemList("media", "SendFile", (("content", "media_urls"), ("media_kind", "media_kinds"))),
    )
}

#: The variables only an item of ``$each`` has (``content`` and ``media_kind`` are a SendFile's
#: anyway: in an item of ``media`` they are that file's).
ITEM_VARIABLES: Final = frozenset(
    name for item in LISTS.values() for name in item.item_variables
) - {"content", "media_kind"}

#: docs/format.md, "Media kinds": what a file is, for a provider that sends each kind its own way.
MEDIA_KINDS: Final = ("image", "video", "audio", "document")

_BY_EXTENSION: Final = {
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "webp", "bmp", "heic", "heif"), "image"),
    **dict.fromkeys(("mp4", "m4v", "mov", "3gp", "3gpp", "webm", "mpeg", "mpg"), "video"),
    **dict.fromkeys(("mp3", "m4a", "aac", "amr", "ogg", "oga", "opus", "wav"), "audio"),
}


def media_kind(media_type: str, url: str) -> str:
    """A file's kind: by its media type's top-level type when there is one (``image/png`` is an
    image, any other type a document), else by the extension of its URL's last path segment
    (the table in docs/format.md), else ``document``."""
    top = media_type.partition("/")[0].strip().lower()
    if top:
        return top if top in MEDIA_KINDS[:3] else "document"
    try:
        path = urlsplit(url).path
    except ValueError:
        return "document"
    name = path.rpartition("/")[2]
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    return _BY_EXTENSION.get(extension, "document")


def media_kinds(urls: Sequence[str], media_type: str = "", given: str = "") -> tuple[str, ...]:
    """The kind of each file of a send: the first's as the caller ``given`` it, else by its
    ``media_type`` or URL; each further file's by its URL (a type is given for the first only)."""
    if not urls:
        return ()
    first = given or media_kind(media_type, urls[0])
    return (first, *(media_kind("", url) for url in urls[1:]))
