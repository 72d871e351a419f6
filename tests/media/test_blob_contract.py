"""The BlobStore contract, run against every backend: files on disk and S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
from collections.abc import AsyncIterator

import pytest

from server.media import BlobNotFound, BlobStoreError, BlobStream, BlobTooLarge, StoredBlob
from tests.media_support import BlobBackend, chunks_of

KEY = "media/0a1b2c3d/msg-1.part_2"
DATA = bytes(range(256)) * 4  # 1024 bytes, each offset telling its position mod 256
MIB = 1024 * 1024


async def read_all(stream: BlobStream) -> bytes:
    return b"".join([chunk async for chunk in stream])


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_put_then_open_size_and_hash(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    stored = await store.put(KEY, chunks_of([b"hello ", b"", b"world"]), max_size=100)
    assert stored == StoredBlob(key=KEY, size=11, sha256=hashlib.sha256(b"hello world").hexdigest())
    assert await read_all(store.open(KEY)) == b"hello world"
    assert await store.size(KEY) == 11


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, DATA),
        (100, None, DATA[100:]),
        (100, 200, DATA[100:200]),
        (0, 1, DATA[:1]),
        (1023, None, DATA[1023:]),
        (1000, 5000, DATA[1000:]),  # an end past the blob's end reads to its end
        (0, 1024, DATA),
        (1024, None, b""),  # a start at the end reads nothing
        (2000, None, b""),
        (2000, 3000, b""),
        (5, 5, b""),
    ],
)
async def test_ranges(
    blob_backend: BlobBackend, start: int, end: int | None, expected: bytes
) -> None:
    store = blob_backend.store
    await store.put(KEY, chunks_of([DATA]), max_size=len(DATA))
    assert await read_all(store.open(KEY, start=start, end=end, chunk_size=100)) == expected


async def test_empty_blob(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    stored = await store.put(KEY, chunks_of([]), max_size=0)
    assert stored == StoredBlob(key=KEY, size=0, sha256=hashlib.sha256(b"").hexdigest())
    assert await store.size(KEY) == 0
    assert await read_all(store.open(KEY)) == b""
    assert await read_all(store.open(KEY, start=0, end=10)) == b""
    assert await read_all(store.open(KEY, start=3)) == b""


async def test_large_blob_streams_in_chunks(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    data = random_bytes(3 * MIB + 17)
    sizes = random.Random(2).choices([1, 100, 4096, 65536, 300_000], k=1000)
    parts, offset = [], 0
    for size in sizes:
        parts.append(data[offset : offset + size])
        offset += size
        if offset >= len(data):
            break
    parts.append(data[offset:])
    stored = await store.put(KEY, chunks_of(parts), max_size=len(data))
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()

    chunk_size = 256 * 1024
    received = [chunk async for chunk in store.open(KEY, chunk_size=chunk_size)]
    assert b"".join(received) == data
    assert all(0 < len(chunk) <= chunk_size for chunk in received)
    assert len(received) >= len(data) // chunk_size

    middle = [chunk async for chunk in store.open(KEY, start=MIB - 5, end=2 * MIB + 5)]
    assert b"".join(middle) == data[MIB - 5 : 2 * MIB + 5]


async def test_missing_blob(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    assert await store.size(KEY) is None
    with pytest.raises(BlobNotFound):
        await store.open(KEY)
    with pytest.raises(BlobNotFound):
        await read_all(store.open(KEY))
    with pytest.raises(BlobNotFound):
        await read_all(store.open(KEY, start=5, end=5))
    await store.delete(KEY)  # absent is fine


async def test_open_is_checked_when_awaited(blob_backend: BlobBackend) -> None:
    """A stream used with ``async with``: opened on entry, read in the chunks asked for, closed
    on exit."""
    store = blob_backend.store
    await store.put(KEY, chunks_of([DATA]), max_size=len(DATA))
    async with store.open(KEY, start=10, chunk_size=7) as stream:
        first = await stream.__anext__()
        assert first == DATA[10:17]
        rest = await read_all(stream)
    assert first + rest == DATA[10:]
    assert await read_all(stream) == b""  # closed: nothing more


async def test_a_stream_closed_early_releases_its_blob(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    await store.put(KEY, chunks_of([DATA]), max_size=len(DATA))
    stream = await store.open(KEY, chunk_size=10)
    assert await stream.__anext__() == DATA[:10]
    await stream.aclose()
    await stream.aclose()
    assert await read_all(stream) == b""
    await store.delete(KEY)
    assert await store.size(KEY) is None


async def test_a_stream_left_unclosed_is_released(blob_backend: BlobBackend) -> None:
    """A reader that stops early without closing (a ``break``, a client gone) leaves no open
    file or connection behind to warn (warnings are errors here) once the stream is collected."""
    store = blob_backend.store
    await store.put(KEY, chunks_of([DATA]), max_size=len(DATA))
    async for chunk in store.open(KEY, chunk_size=10):
        assert chunk == DATA[:10]
        break
    gc.collect()
    assert await read_all(store.open(KEY)) == DATA


async def test_delete(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    await store.put(KEY, chunks_of([DATA]), max_size=len(DATA))
    await store.put("media/0a1b2c3d/other", chunks_of([b"x"]), max_size=1)
    await store.delete(KEY)
    assert await store.size(KEY) is None
    with pytest.raises(BlobNotFound):
        await store.open(KEY)
    assert await store.size("media/0a1b2c3d/other") == 1


async def test_put_replaces(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    await store.put(KEY, chunks_of([DATA]), max_size=len(DATA))
    stored = await store.put(KEY, chunks_of([b"new"]), max_size=len(DATA))
    assert stored.size == 3
    assert await read_all(store.open(KEY)) == b"new"
    assert await store.size(KEY) == 3


@pytest.mark.parametrize("size", [11, 3 * MIB])
async def test_too_large_leaves_nothing(blob_backend: BlobBackend, size: int) -> None:
    store = blob_backend.store
    data = random_bytes(size)
    step = max(1, size // 10)
    with pytest.raises(BlobTooLarge) as caught:
        await store.put(
            KEY, chunks_of(data[i : i + step] for i in range(0, size, step)), max_size=size - 1
        )
    assert caught.value.max_size == size - 1
    assert blob_backend.leftovers() == []
    assert await store.size(KEY) is None
    # Exactly the cap is allowed.
    stored = await store.put(KEY, chunks_of([data]), max_size=size)
    assert stored.size == size


async def test_too_large_keeps_the_blob_it_would_replace(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    await store.put(KEY, chunks_of([b"old"]), max_size=10)
    with pytest.raises(BlobTooLarge):
        await store.put(KEY, chunks_of([b"much", b"too", b"long"]), max_size=10)
    assert await read_all(store.open(KEY)) == b"old"
    assert len(blob_backend.leftovers()) == 1


async def test_failed_source_leaves_nothing(blob_backend: BlobBackend) -> None:
    store = blob_backend.store

    async def failing() -> AsyncIterator[bytes]:
        yield random_bytes(200_000)
        yield random_bytes(2 * MIB)
        raise ConnectionResetError("the provider hung up")

    with pytest.raises(ConnectionResetError):
        await store.put(KEY, failing(), max_size=10 * MIB)
    assert blob_backend.leftovers() == []
    assert await store.size(KEY) is None


async def test_cancelled_put_leaves_nothing(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    sent = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield random_bytes(1_500_000)
        sent.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(store.put(KEY, stalls(), max_size=10 * MIB))
    await sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blob_backend.leftovers() == []


async def test_a_put_cancelled_as_it_begins_leaves_nothing(blob_backend: BlobBackend) -> None:
    """Cancelled while its file is being made (an upload cancelled by its client at once): the
    file made meanwhile is closed and removed, not left open and behind."""
    task = asyncio.create_task(blob_backend.store.put(KEY, chunks_of([DATA]), max_size=MIB))
    await asyncio.sleep(0)  # the put waits for its first call on the store
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gc.collect()  # an unclosed file shows as a ResourceWarning (an error here)
    assert blob_backend.leftovers() == []


async def test_a_reader_never_sees_a_partial_blob(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    other = "media/0a1b2c3d/new"
    await store.put(KEY, chunks_of([b"old blob"]), max_size=MIB)
    halfway = asyncio.Event()
    go_on = asyncio.Event()
    data = random_bytes(MIB)

    async def slow() -> AsyncIterator[bytes]:
        yield data[: MIB // 2]
        halfway.set()
        await go_on.wait()
        yield data[MIB // 2 :]

    replacing = asyncio.create_task(store.put(KEY, slow(), max_size=MIB))
    adding = asyncio.create_task(store.put(other, chunks_of([b"a", b"b"]), max_size=MIB))
    await halfway.wait()  # the first half is on disk or in the spool
    assert await read_all(store.open(KEY)) == b"old blob"
    assert await store.size(KEY) == len(b"old blob")
    go_on.set()
    await replacing
    await adding
    assert await read_all(store.open(KEY)) == data
    assert await read_all(store.open(other)) == b"ab"


async def test_a_blob_being_written_is_not_there(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    halfway = asyncio.Event()
    go_on = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first half "
        halfway.set()
        await go_on.wait()
        yield b"second half"

    writing = asyncio.create_task(store.put(KEY, slow(), max_size=MIB))
    await halfway.wait()
    assert await store.size(KEY) is None
    with pytest.raises(BlobNotFound):
        await store.open(KEY)
    go_on.set()
    assert (await writing).size == len(b"first half second half")
    assert await read_all(store.open(KEY)) == b"first half second half"


async def test_concurrent_puts_of_one_key(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    payloads = [bytes([i]) * 300_000 for i in range(8)]

    async def put(payload: bytes) -> StoredBlob:
        return await store.put(
            KEY,
            chunks_of(payload[j : j + 50_000] for j in range(0, len(payload), 50_000)),
            max_size=len(payload),
        )

    stored = await asyncio.gather(*(put(payload) for payload in payloads))
    assert {blob.sha256 for blob in stored} == {
        hashlib.sha256(payload).hexdigest() for payload in payloads
    }
    final = await read_all(store.open(KEY))
    assert final in payloads  # one whole put won, nothing mixed
    assert len(blob_backend.leftovers()) == 1


BAD_KEYS = [
    "",
    "/media/abc",
    "media/../etc/passwd",
    "..",
    "media/..hidden",
    "media//abc",
    "media/abc/",
    "./media",
    "media/./abc",
    "media/a b",
    "media/a\\b",
    "media/a%2e",
    "media/a\x00b",
    "media/ä",
    "https://example.com/x.jpg",
    "media/.~put-abc",
    "x" * 513,
    "media/" + "y" * 201,
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused(blob_backend: BlobBackend, key: str) -> None:
    store = blob_backend.store
    with pytest.raises(ValueError):
        await store.put(key, chunks_of([b"x"]), max_size=1)
    with pytest.raises(ValueError):
        store.open(key)
    with pytest.raises(ValueError):
        await store.size(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    assert blob_backend.leftovers() == []


@pytest.mark.parametrize("key", ["a", "media/0a1b/AZaz09._-", "x" * 200, "a/b/c/d/e/f.g"])
async def test_good_keys_are_taken(blob_backend: BlobBackend, key: str) -> None:
    store = blob_backend.store
    await store.put(key, chunks_of([key.encode()]), max_size=1000)
    assert await read_all(store.open(key)) == key.encode()


@pytest.mark.parametrize(
    ("start", "end", "chunk_size"), [(-1, None, 10), (10, 9, 10), (0, None, 0)]
)
async def test_bad_ranges_are_refused(
    blob_backend: BlobBackend, start: int, end: int | None, chunk_size: int
) -> None:
    with pytest.raises(ValueError):
        blob_backend.store.open(KEY, start=start, end=end, chunk_size=chunk_size)


async def test_negative_cap_is_refused(blob_backend: BlobBackend) -> None:
    with pytest.raises(ValueError):
        await blob_backend.store.put(KEY, chunks_of([]), max_size=-1)


async def test_a_closed_store_refuses(blob_backend: BlobBackend) -> None:
    store = blob_backend.store
    await store.put(KEY, chunks_of([b"x"]), max_size=1)
    await store.aclose()
    with pytest.raises(BlobStoreError):
        await store.put(KEY, chunks_of([b"y"]), max_size=1)
    with pytest.raises(BlobStoreError):
        await store.size(KEY)
