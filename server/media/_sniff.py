"""A media file's content type, read from its first bytes; never from what a provider declared.

:func:`sniff_content_type` looks at the first :data:`SNIFF_BYTES` of a file, in this order:

1. an ISO base media file (``ftyp`` box at offset 4) by its brands, the major brand first:
   HEIC/HEIF/AVIF images, 3GPP and 3GPP2, MP4 (audio/mp4 for ``M4A``), QuickTime. Read here
   rather than by ``filetype``: its 3GP matcher looks for ``ftyp`` at offset 0 and so never
   matches, and its MP4 matcher takes a ``3gp5`` file with an ``isom`` compatible brand for MP4;
2. AMR and AMR-WB by their magic (RFC 4867 §5; ``filetype`` needs 12 bytes and knows no AMR-WB);
3. Ogg: ``audio/ogg`` (Opus, RFC 7845 §9, and Vorbis), ``video/ogg`` when its first packet is
   Theora;
4. any other binary signature ``filetype`` knows (JPEG, PNG, GIF, WebP, MP3, WAV, PDF …), a few
   of its names made the registered ones (``audio/x-wav`` → ``audio/wav``);
5. text: the head is UTF-8 (a BOM allowed; a character cut by the head's end allowed) without
   control characters other than tab, line feed, form feed and carriage return. A vCard
   (``BEGIN:VCARD``) is ``text/vcard``, an iCalendar object ``text/calendar``, any other text
   ``text/plain``. Markup is text too: nothing is ever called HTML, SVG or XML, so no file this
   gateway serves is a document a browser would run.

Anything else is unknown (None): callers record it as :data:`UNKNOWN_CONTENT_TYPE`.

:func:`allowed` (and :class:`ContentTypePolicy`) says whether a content type is among patterns
such as ``image/*`` or ``video/mp4``: the allowed types of an integration.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator

import filetype

__all__ = [
    "MMS_CONTENT_TYPES",
    "SNIFF_BYTES",
    "UNKNOWN_CONTENT_TYPE",
    "SniffedStream",
    "sniff_content_type",
]

#: How many first bytes of a file :func:`sniff_content_type` reads (more are ignored).
SNIFF_BYTES = 8192
#: The content type of a file whose type is not known.
UNKNOWN_CONTENT_TYPE = "application/octet-stream"
#: What MMS carries (3GPP TS 26.140 §4): images, audio, video, text, vCard and iCalendar, PDF.
MMS_CONTENT_TYPES = (
    "image/*",
    "audio/*",
    "video/*",
    "text/plain",
    "text/vcard",
    "text/x-vcard",
    "text/calendar",
    "application/pdf",
)

# -- ISO base media files (ISO/IEC 14496-12 §4.3: size, 'ftyp', major brand, minor version,
# compatible brands) -----------------------------------------------------------------------

_BRANDS = {
    **dict.fromkeys(("heic", "heix", "heim", "heis", "hevc", "hevx"), "image/heic"),
    **dict.fromkeys(("avif", "avis"), "image/avif"),
    **dict.fromkeys(("M4A ", "M4B ", "M4P ", "F4A ", "F4B "), "audio/mp4"),
    "qt  ": "video/quicktime",
    **dict.fromkeys(
        (
            "isom", "iso2", "iso3", "iso4", "iso5", "iso6", "mp41", "mp42", "mp71", "avc1",
            "dash", "mmp4", "MSNV", "NDAS", "NDSC", "NDSH", "NDSM", "NDSP", "NDSS", "NDXC",
            "M4V ", "M4VH", "M4VP", "F4V ", "F4P ",
        ),
        "video/mp4",
    ),
}  # fmt: skip
# Structural HEIF brands (ISO/IEC 23008-12): an image whose codec brand may follow.
_HEIF_STRUCTURAL = frozenset(("mif1", "msf1", "miaf"))


def _brand_type(brand: str) -> str | None:
    # 3GPP TS 26.244 §5.4: 3gpN, 3grN, 3gsN, 3geN, 3ggN, 3gtN, 3gmN, 3gfN…; 3GPP2: 3g2X.
    if brand.startswith("3g2"):
        return "video/3gpp2"
    if brand.startswith("3g"):
        return "video/3gpp"
    return _BRANDS.get(brand)


def _iso_media(head: bytes) -> str | None:
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size) if size >= 16 else 16
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    heif = False
    for raw in brands:
        brand = raw.decode("latin-1")
        if brand in _HEIF_STRUCTURAL:
            heif = True
            continue
        found = _brand_type(brand)
        if found is not None:
            return found
    return "image/heif" if heif else None


# -- Ogg (RFC 3533 §6: a page header of 27 bytes, its segment table, then the packet) --------


def _ogg(head: bytes) -> str:
    segments = head[26] if len(head) > 26 else 0
    packet = head[27 + segments : 27 + segments + 8]
    return "video/ogg" if packet.startswith(b"\x80theora") else "audio/ogg"


# -- text ---------------------------------------------------------------------------------

# C0 controls other than tab, line feed, form feed and carriage return; DEL; C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_NAMES = {"audio/x-wav": "audio/wav", "audio/x-flac": "audio/flac", "audio/x-aiff": "audio/aiff"}


def _text(head: bytes, *, whole: bool) -> str | None:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    try:
        # Not final unless the head is the whole file: a character cut in two by the head's end
        # is not an error.
        text = decoder.decode(head, final=whole)
    except UnicodeDecodeError:
        return None
    if not text or _CONTROL.search(text):
        return None
    start = text.lstrip()[:16].upper()
    if start.startswith("BEGIN:VCARD"):
        return "text/vcard"
    if start.startswith("BEGIN:VCALENDAR"):
        return "text/calendar"
    return "text/plain"


def sniff_content_type(head: bytes, *, whole: bool = False) -> str | None:
    """The content type of a file whose first bytes are ``head`` (None: not known).

    ``whole`` says that ``head`` is the whole file (a text may then not end inside a character).
    """
    head = bytes(head[:SNIFF_BYTES])
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_media(head)
    if head.startswith((b"#!AMR-WB\n", b"#!AMR-WB_MC1.0\n")):
        return "audio/amr-wb"
    if head.startswith((b"#!AMR\n", b"#!AMR_MC1.0\n")):
        return "audio/amr"
    if head.startswith(b"OggS"):
        return _ogg(head)
    # Only ever bytes: given a str, filetype would open a file of that name.
    kind = filetype.guess(head) if head else None
    if kind is not None:
        mime = str(kind.mime)
        return _NAMES.get(mime, mime)
    return _text(head, whole=whole or len(head) < SNIFF_BYTES)


class SniffedStream:
    """Passes a file's chunks on (to a blob store's put) and keeps its first
    :data:`SNIFF_BYTES` meanwhile; :attr:`content_type` is then what they say it is."""

    __slots__ = ("_chunks", "_head")

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks
        self._head = bytearray()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = self._head
        async for chunk in self._chunks:
            if len(head) < SNIFF_BYTES:
                head.extend(chunk[: SNIFF_BYTES - len(head)])
            yield chunk

    @property
    def content_type(self) -> str:
        return sniff_content_type(bytes(self._head)) or UNKNOWN_CONTENT_TYPE
