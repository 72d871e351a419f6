"""Content types from a file's first bytes (server/media/_sniff.py), over real minimal files of
every type MMS carries, and the allowed-types policy."""

from __future__ import annotations

import pytest
from _media_files import (
    GIF,
    JPEG,
    JPEG_EXIF,
    MP3_FRAME,
    MP3_ID3,
    OPUS,
    PDF,
    THEORA,
    VCARD,
    VORBIS,
    WEBP,
    iso_media,
    png,
    wav,
)

from server.engine import content_type_allowed
from server.media import (
    MMS_CONTENT_TYPES,
    SNIFF_BYTES,
    sniff_content_type,
)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("jpeg", JPEG, "image/jpeg"),
        ("jpeg from a camera", JPEG_EXIF, "image/jpeg"),
        ("png", png(), "image/png"),
        ("gif", GIF, "image/gif"),
        ("webp", WEBP, "image/webp"),
        ("heic", iso_media(b"heic", b"mif1", b"heic"), "image/heic"),
        ("heic, structural brand first", iso_media(b"mif1", b"mif1", b"heic"), "image/heic"),
        ("heif", iso_media(b"mif1", b"mif1"), "image/heif"),
        ("avif", iso_media(b"avif", b"mif1", b"avif"), "image/avif"),
        ("mp4", iso_media(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        ("mp4 mp42", iso_media(b"mp42", b"mp42", b"isom"), "video/mp4"),
        ("m4a", iso_media(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
        ("3gp", iso_media(b"3gp4", b"3gp4"), "video/3gpp"),
        ("3gp with isom", iso_media(b"3gp5", b"3gp5", b"isom"), "video/3gpp"),
        ("3g2", iso_media(b"3g2a", b"3g2a"), "video/3gpp2"),
        ("quicktime", iso_media(b"qt  ", b"qt  "), "video/quicktime"),
        ("mp3 with ID3", MP3_ID3, "audio/mpeg"),
        ("mp3 frame", MP3_FRAME, "audio/mpeg"),
        ("amr", b"#!AMR\n\x3c\x48\xf5\x1f", "audio/amr"),
        ("amr-wb", b"#!AMR-WB\n\x04\x10", "audio/amr-wb"),
        ("ogg opus", OPUS, "audio/ogg"),
        ("ogg vorbis", VORBIS, "audio/ogg"),
        ("ogg theora", THEORA, "video/ogg"),
        ("wav", wav(), "audio/wav"),
        ("pdf", PDF, "application/pdf"),
        ("vcard", VCARD, "text/vcard"),
        ("vcard lower case, BOM", b"\xef\xbb\xbf\nbegin:vcard\nEND:VCARD\n", "text/vcard"),
        ("icalendar", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "text/calendar"),
        ("text", "Hello 👋\tthere\r\n".encode(), "text/plain"),
        ("whitespace", b" \n", "text/plain"),
        ("html is only text", b"<!DOCTYPE html><script>alert(1)</script>", "text/plain"),
        ("svg is only text", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "text/plain"),
        ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "application/zip"),
        ("exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "application/x-msdownload"),
    ],
)
def test_sniffed_types(name: str, data: bytes, expected: str) -> None:
    assert sniff_content_type(data) == expected, name


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("a BOM alone", b"\xef\xbb\xbf"),
        ("not UTF-8", b"caf\xe9 au lait"),
        ("a NUL", b"text\x00more"),
        ("other control", b"text\x1b[31m"),
        ("UTF-16", "hello".encode("utf-16")),
        ("unknown ftyp brand", iso_media(b"zzzz", b"yyyy")),
        ("random", bytes(range(200, 256)) * 3),
    ],
)
def test_unknown(name: str, data: bytes) -> None:
    assert sniff_content_type(data) is None, name


def test_a_character_cut_by_the_head_is_text_unless_the_head_is_the_whole_file() -> None:
    head = ("a" * (SNIFF_BYTES - 1) + "é").encode()[:SNIFF_BYTES]
    assert head.endswith(b"\xc3")
    assert sniff_content_type(head) == "text/plain"
    assert sniff_content_type(head + b"more of the file") == "text/plain"
    assert sniff_content_type(head, whole=True) is None
    # A short head is the whole file: a cut character there is not text.
    assert sniff_content_type(b"abc\xc3") is None


def test_only_the_head_is_read() -> None:
    # A NUL past SNIFF_BYTES does not make a text binary.
    assert sniff_content_type(b"a" * SNIFF_BYTES + b"\x00") == "text/plain"


def test_the_providers_word_is_not_asked() -> None:
    # The function has no parameter for a declared type: a PNG named text is a PNG.
    assert sniff_content_type(bytearray(png())) == "image/png"


# -- the default types ------------------------------------------------------------------------


def test_the_mms_types_allow_every_sniffed_mms_type_and_refuse_executables() -> None:
    for data in (JPEG, png(), GIF, WEBP, iso_media(b"3gp4", b"3gp4"), OPUS, wav(), PDF, VCARD):
        sniffed = sniff_content_type(data)
        assert sniffed is not None
        assert content_type_allowed(sniffed, MMS_CONTENT_TYPES), sniffed
    for data in (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"):
        sniffed = sniff_content_type(data)
        assert sniffed is not None
        assert not content_type_allowed(sniffed, MMS_CONTENT_TYPES), sniffed
    assert not content_type_allowed("application/octet-stream", MMS_CONTENT_TYPES)
