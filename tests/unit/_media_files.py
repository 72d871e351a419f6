"""Real minimal media files (or their first bytes, all a sniffer reads), made here."""

from __future__ import annotations

import io
import struct
import wave
import zlib

__all__ = [
    "GIF",
    "JPEG",
    "JPEG_EXIF",
    "MP3_FRAME",
    "MP3_ID3",
    "OPUS",
    "PDF",
    "THEORA",
    "VCARD",
    "VORBIS",
    "WEBP",
    "iso_media",
    "ogg",
    "png",
    "wav",
]


def png() -> bytes:
    """A whole 1×1 PNG (signature, IHDR, IDAT, IEND with their CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def wav() -> bytes:
    """A whole WAV file as the standard library writes it."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x00" * 80)
    return out.getvalue()


def iso_media(major: bytes, *compatible: bytes) -> bytes:
    """An ISO base media file's ftyp box, then an empty mdat box."""
    ftyp = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + b"\x00\x00\x00\x08mdat"


def ogg(packet: bytes) -> bytes:
    """The first Ogg page (RFC 3533 §6) holding ``packet`` (its CRC is not checked here)."""
    header = b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 8
    return header + bytes([1, len(packet)]) + packet


# A whole 1×1 GIF89a.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# The start of a baseline JPEG (SOI, JFIF APP0) and of a camera's (SOI, Exif APP1).
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00"
JPEG_EXIF = b"\xff\xd8\xff\xe1\x00\x16Exif\x00\x00II*\x00\x08\x00\x00\x00"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 \x0e\x00\x00\x000\x01\x00\x9d\x01*\x01\x00\x01\x00"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90d\x00"
MP3_FRAME = b"\xff\xfb\x90d" + b"\x00" * 28
OPUS = ogg(b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
VORBIS = ogg(b"\x01vorbis\x00\x00\x00\x00\x01\x44\xac\x00\x00")
THEORA = ogg(b"\x80theora\x03\x02\x01")
VCARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann Example\r\nTEL:+15550001111\r\nEND:VCARD\r\n"
