"""The sidecar's media route over real sockets on 127.0.0.1: whole items, HEAD, byte ranges, 416,
signed URLs (forged, expired, changed, rotated keys → 404 or served), the headers that keep a
browser from rendering what a provider sent, streaming, and logs without signatures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from _media_files import GIF, JPEG, OPUS, PDF, VCARD, iso_media, png, wav

from msgbridge.v1 import ingest_pb2
from server.media import MediaSigner, sniff_content_type
from server.security.secrets import SecretBox
from server.sidecar import (
    CoreUnavailable,
    MediaHead,
    MediaReader,
    SidecarServer,
    build_sidecar_app,
)

PUBLIC_URL = "https://hooks.example.com/base/"
TIMEOUT_S = 20.0
FAR = 4_000_000_000  # an expiry long after any run of this test
BODY = bytes(range(256)) * 4 + b"tail"  # 1028 bytes, every offset tells where it came from
SIZE = len(BODY)


class NoIngest:
    async def ingest(self, delivery: ingest_pb2.WebhookDelivery) -> ingest_pb2.WebhookVerdict:
        raise AssertionError("a media request is never forwarded")


@dataclass
class Item:
    data: bytes
    content_type: str
    #: What the head says the size is (None: the data's).
    size: int | None = None
    #: Raise after yielding this many chunks.
    fail_after: int | None = None


@dataclass
class MemoryReader:
    """Media in memory, behind signed URLs: the MediaReader the lead builds over the store."""

    signer: MediaSigner
    items: dict[str, Item] = field(default_factory=dict)
    chunk: int = 100
    reads: list[tuple[str, int, int | None]] = field(default_factory=list)
    unavailable: bool = False
    closed: int = 0
    heads: int = 0

    async def head(self, media_id: str, expires_at: int, signature: str) -> MediaHead | None:
        self.heads += 1
        if self.unavailable:
            raise CoreUnavailable("core down", retry_after_s=7)
        if not self.signer.verify(media_id, expires_at, signature, time.time()):
            return None
        item = self.items.get(media_id)
        if item is None:
            return None
        size = len(item.data) if item.size is None else item.size
        return MediaHead(content_type=item.content_type, size=size)

    async def read(
        self, media_id: str, expires_at: int, signature: str, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        self.reads.append((media_id, start, end))
        item = self.items[media_id]
        data = item.data[start:end]
        try:
            for number, offset in enumerate(range(0, len(data), self.chunk)):
                if item.fail_after is not None and number == item.fail_after:
                    raise OSError("disk gone")
                await asyncio.sleep(0)
                yield data[offset : offset + self.chunk]
        finally:
            self.closed += 1


def new_signer(*keys: bytes) -> MediaSigner:
    return MediaSigner.from_box(SecretBox(list(keys) or [os.urandom(32)]))


Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[SidecarServer] = []

    async def start(media: MediaReader | None, **options: Any) -> int:
        app = build_sidecar_app(
            NoIngest(),
            public_url=PUBLIC_URL,
            max_body=1000,
            request_timeout_s=TIMEOUT_S,
            media=media,
            **options,
        )
        server = SidecarServer(app, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        await server.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
def reader() -> MemoryReader:
    found = MemoryReader(new_signer())
    found.items["pic"] = Item(png(), "image/png")
    found.items["blob"] = Item(BODY, "application/octet-stream")
    return found


def url(port: int, signer: MediaSigner, media_id: str, expires_at: int = FAR) -> str:
    return f"http://127.0.0.1:{port}{signer.sign(media_id, expires_at)}"


# -- whole items and HEAD ----------------------------------------------------------------------


async def test_get_serves_the_whole_item_with_its_headers(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    port = await serve(reader)
    before = int(time.time())
    async with http.get(url(port, reader.signer, "blob")) as response:
        body = await response.read()
        headers = response.headers
        assert response.status == 200
    after = int(time.time()) + 1
    assert body == BODY
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Length"] == str(SIZE)
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert headers["Content-Disposition"] == "attachment"
    assert "Content-Range" not in headers
    assert "Transfer-Encoding" not in headers
    cache, max_age = headers["Cache-Control"].split(", max-age=")
    assert cache == "private"
    assert FAR - after <= int(max_age) <= FAR - before
    assert reader.reads == [("blob", 0, None)]
    assert reader.closed == 1


@pytest.mark.parametrize(
    ("content_type", "inline"),
    [
        ("image/png", True),
        ("video/3gpp", True),
        ("audio/amr", True),
        ("image/svg+xml", False),  # a document that runs scripts
        ("text/plain", False),
        ("text/vcard", False),
        ("application/pdf", False),
    ],
)
async def test_only_images_audio_and_video_are_not_attachments(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader, content_type: str, inline: bool
) -> None:
    reader.items["x"] = Item(b"data", content_type)
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "x")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == content_type
        assert ("Content-Disposition" not in response.headers) is inline
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_head_gives_the_head_without_the_body_or_a_read(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    port = await serve(reader)
    # A Range is ignored on HEAD (defined for GET only).
    for headers in ({}, {"Range": "bytes=0-9"}):
        async with http.head(url(port, reader.signer, "pic"), headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(png()))
            assert response.headers["Content-Type"] == "image/png"
            assert response.headers["Accept-Ranges"] == "bytes"
            assert "Content-Range" not in response.headers
            assert await response.read() == b""
    assert reader.reads == []


async def test_an_empty_item(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    reader.items["empty"] = Item(b"", "text/plain")
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "empty")) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "0"
        assert await response.read() == b""
    async with http.get(url(port, reader.signer, "empty"), headers={"Range": "bytes=0-"}) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == "bytes */0"


# -- ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=2-5", 2, 6),
        ("bytes=0-0", 0, 1),
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE),
        ("bytes=1000-", 1000, SIZE),
        ("bytes=-4", SIZE - 4, SIZE),
        ("bytes=-100000", 0, SIZE),  # a suffix longer than the item: all of it
        ("bytes=10-99999", 10, SIZE),  # a last position past the end: the end
        (f"bytes=3-{'9' * 40}", 3, SIZE),
        ("BYTES = 7-8", 7, 9),
        ("bytes=7-8,", 7, 9),  # an empty list element is no range
    ],
)
async def test_one_byte_range_is_206_with_its_content_range(
    serve: Serve,
    http: aiohttp.ClientSession,
    reader: MemoryReader,
    header: str,
    start: int,
    end: int,
) -> None:
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "blob"), headers={"Range": header}) as response:
        body = await response.read()
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
        assert response.headers["Content-Length"] == str(end - start)
        assert response.headers["Content-Type"] == "application/octet-stream"
    assert body == BODY[start:end]
    assert reader.reads == [("blob", start, end)]


@pytest.mark.parametrize(
    "header", [f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 10}", "bytes=-0", f"bytes={'9' * 40}-"]
)
async def test_a_range_past_the_end_is_416_with_the_size(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader, header: str
) -> None:
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "blob"), headers={"Range": header}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert reader.reads == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=0-1,4-5"},  # several ranges
        {"Range": "bytes=5-2"},  # last before first
        {"Range": "bytes=a-b"},
        {"Range": "bytes=-"},
        {"Range": "bytes 0-1"},
        {"Range": "bytes=1-2-3"},
        {"Range": "items=0-1"},  # another unit
        {"Range": "bytes=+1-2"},
        {"Range": "bytes=0-1", "If-Range": '"etag"'},  # no validator could match
    ],
)
async def test_several_ranges_or_a_malformed_range_serve_the_whole_item(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader, headers: dict[str, str]
) -> None:
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "blob"), headers=headers) as response:
        assert response.status == 200
        assert "Content-Range" not in response.headers
        assert await response.read() == BODY


# -- signed URLs -------------------------------------------------------------------------------


async def test_a_valid_url_serves_and_any_change_to_it_is_404(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    reader.items["pic2"] = Item(b"other", "image/png")
    port = await serve(reader)
    signer = reader.signer
    good = signer.sign("pic", FAR)
    signature = signer.signature("pic", FAR)
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    async with http.get(f"http://127.0.0.1:{port}{good}") as response:
        assert response.status == 200

    changed = [
        f"/media/pic2?e={FAR}&s={signature}",  # another id, same query
        f"/media/pic?e={FAR + 1}&s={signature}",  # another expiry
        f"/media/pic?e={FAR}&s={flipped}",  # a forged signature
        f"/media/pic?e={FAR}&s={signature[:-1]}",
        f"/media/pic?e={FAR}",  # no signature
        f"/media/pic?s={signature}",  # no expiry
        f"/media/pic?e={FAR}&s={signature}&x=1",  # anything more
        f"/media/pic?e={FAR}&e={FAR}&s={signature}",
        f"/media/pic?e={FAR}&s={signature}&s={signature}",
        f"/media/pic?e=+{FAR}&s={signature}",
        f"/media/pic?e=0{FAR}&s={signature}",
        f"/media/pic?e={FAR}.0&s={signature}",
        "/media/pic",
        f"/media/pic.png?e={FAR}&s={signature}",
    ]
    for path in changed:
        for method in ("GET", "HEAD"):
            async with http.request(method, f"http://127.0.0.1:{port}{path}") as response:
                assert response.status == 404, (method, path)
                assert "no-store" in response.headers["Cache-Control"]
    assert reader.reads == [("pic", 0, None)]


async def test_an_expired_url_is_404(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    port = await serve(reader)
    expired = int(time.time()) - 1
    async with http.get(url(port, reader.signer, "pic", expired)) as response:
        assert response.status == 404
    async with http.head(url(port, reader.signer, "pic", expired)) as response:
        assert response.status == 404
    assert reader.reads == []
    assert reader.heads == 0  # refused before the reader (the core) is asked


async def test_an_unknown_id_with_a_valid_signature_is_404_like_a_forged_one(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "nothing")) as unknown:
        unknown_body = await unknown.read()
        assert unknown.status == 404
    forged = url(port, new_signer(), "pic")
    async with http.get(forged) as response:
        assert response.status == 404
        assert await response.read() == unknown_body


async def test_a_url_signed_before_a_key_rotation_is_still_served(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = new_signer(old)
    old_url = before.sign("pic", FAR)
    rotated = MemoryReader(new_signer(new, old), {"pic": Item(b"\x89PNG", "image/png")})
    port = await serve(rotated)
    async with http.get(f"http://127.0.0.1:{port}{old_url}") as response:
        assert response.status == 200
        assert await response.read() == b"\x89PNG"
    async with http.get(url(port, rotated.signer, "pic")) as response:
        assert response.status == 200
    # Without the old key in the file, its URL is no longer served.
    retired = MemoryReader(new_signer(new), {"pic": Item(b"\x89PNG", "image/png")})
    port = await serve(retired)
    async with http.get(f"http://127.0.0.1:{port}{old_url}") as response:
        assert response.status == 404


async def test_without_a_reader_media_paths_are_404_as_before(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    port = await serve(None)
    async with http.get(url(port, reader.signer, "pic")) as response:
        assert response.status == 404


# -- the reader's failures and streaming -------------------------------------------------------


async def test_core_unavailable_is_503_with_retry_after(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    reader.unavailable = True
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "pic")) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"


@pytest.mark.parametrize(
    "item",
    [
        Item(BODY, "application/octet-stream", size=SIZE + 50),  # shorter than its head said
        Item(BODY, "application/octet-stream", fail_after=3),  # the read fails midway
    ],
)
async def test_a_body_cut_short_closes_the_connection_so_the_client_sees_it(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader, item: Item
) -> None:
    reader.items["cut"] = item
    port = await serve(reader)
    # Asked to keep the connection, the server closes it all the same: a client reading to the
    # end sees fewer bytes than Content-Length, never a short file taken as whole.
    path = reader.signer.sign("cut", FAR)
    stream, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".encode())
        async with asyncio.timeout(15):
            answer = await stream.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    declared = item.size if item.size is not None else SIZE
    assert f"Content-Length: {declared}".encode() in head
    assert len(body) < declared
    assert BODY.startswith(body)
    assert reader.closed == 1
    async with http.get(url(port, reader.signer, "cut")) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    async with http.get(url(port, reader.signer, "blob")) as response:
        assert await response.read() == BODY


async def test_a_reader_giving_more_than_its_head_said_is_cut_at_the_head(
    serve: Serve, http: aiohttp.ClientSession, reader: MemoryReader
) -> None:
    reader.items["long"] = Item(BODY, "application/octet-stream", size=10)
    port = await serve(reader)
    async with http.get(url(port, reader.signer, "long")) as response:
        assert response.headers["Content-Length"] == "10"
        assert await response.read() == BODY[:10]
    async with http.get(url(port, reader.signer, "blob")) as response:
        assert await response.read() == BODY  # the connection was left sound


async def test_a_large_item_is_streamed_not_held(serve: Serve, http: aiohttp.ClientSession) -> None:
    size = 16 << 20

    class Endless(MemoryReader):
        async def head(self, media_id: str, expires_at: int, signature: str) -> MediaHead | None:
            return MediaHead("video/mp4", size)

        async def read(
            self, media_id: str, expires_at: int, signature: str, start: int, end: int | None
        ) -> AsyncIterator[bytes]:
            chunk = b"v" * (64 << 10)
            for _ in range(size // len(chunk)):
                yield chunk

    signer = new_signer()
    port = await serve(Endless(signer))
    received = 0
    tracemalloc.start()
    try:
        async with http.get(url(port, signer, "big")) as response:
            async for piece in response.content.iter_chunked(64 << 10):
                received += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < size // 4, f"{peak >> 20} MiB while serving {size >> 20} MiB"


async def test_sniffed_types_are_served_as_sniffed(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    # What the lead's store does: the type recorded is the one sniffed from the bytes.
    files = {
        "jpeg": JPEG,
        "png": png(),
        "gif": GIF,
        "mp4": iso_media(b"isom", b"isom", b"mp41"),
        "threegp": iso_media(b"3gp4", b"3gp4"),
        "opus": OPUS,
        "wav": wav(),
        "pdf": PDF,
        "vcard": VCARD,
    }
    signer = new_signer()
    reader = MemoryReader(signer)
    for name, data in files.items():
        sniffed = sniff_content_type(data, whole=True)
        assert sniffed is not None
        reader.items[name] = Item(data, sniffed)
    port = await serve(reader)
    served = {}
    for name, data in files.items():
        async with http.get(url(port, signer, name)) as response:
            assert await response.read() == data
            served[name] = response.headers["Content-Type"]
    assert served == {
        "jpeg": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "mp4": "video/mp4",
        "threegp": "video/3gpp",
        "opus": "audio/ogg",
        "wav": "audio/wav",
        "pdf": "application/pdf",
        "vcard": "text/vcard",
    }


# -- logging -----------------------------------------------------------------------------------


async def test_logs_never_carry_the_signature_the_query_or_the_path(
    serve: Serve,
    http: aiohttp.ClientSession,
    reader: MemoryReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reader.items["cut"] = Item(BODY, "application/octet-stream", fail_after=1)
    port = await serve(reader)
    signature = reader.signer.signature("blob", FAR)
    for path in (
        reader.signer.sign("blob", FAR),
        reader.signer.sign("cut", FAR),
        f"/media/blob?e={FAR}&s=FORGEDSIGNATURE",
    ):
        async with http.get(f"http://127.0.0.1:{port}{path}") as response:
            with contextlib.suppress(aiohttp.ClientPayloadError):
                await response.read()
    texts = [
        record.getMessage() + repr(record.__dict__) + str(record.exc_text)
        for record in caplog.records
    ]
    assert any("media read failed" in text for text in texts)
    for secret in (signature, "FORGEDSIGNATURE", str(FAR), "/media", "blob"):
        assert not any(secret in text for text in texts), secret
