"""What each blob backend promises beyond the shared contract: file modes and names on disk; S3
multipart uploads, key prefixes and errors that name no secret."""

from __future__ import annotations

import hashlib
import random
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from server.media import BlobNotFound, BlobStore, BlobStoreError, FileBlobStore, S3BlobStore
from tests.media_support import MotoS3, blob_store_kind, chunks_of

MIB = 1024 * 1024


async def read_all(store: FileBlobStore | S3BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.open(key)])


# ---------------------------------------------------------------------------------------------
# Files


@pytest.fixture
async def files(tmp_path: Path) -> AsyncIterator[FileBlobStore]:
    store = FileBlobStore(tmp_path / "data" / "media")
    try:
        yield store
    finally:
        await store.aclose()


def everything_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_private(files: FileBlobStore, tmp_path: Path) -> None:
    await files.start()
    assert mode(files.root) == 0o700
    await files.put("media/org1/blob1", chunks_of([b"secret picture"]), max_size=100)
    assert mode(files.root / "media") == 0o700
    assert mode(files.root / "media" / "org1") == 0o700
    blob = files.root / "media" / "org1" / "blob1"
    assert mode(blob) == 0o600
    assert blob.read_bytes() == b"secret picture"


async def test_files_live_under_the_root_only(files: FileBlobStore, tmp_path: Path) -> None:
    await files.put("a/b", chunks_of([b"x"]), max_size=1)
    assert everything_under(tmp_path) == ["data", "data/media", "data/media/a", "data/media/a/b"]


async def test_a_directory_is_not_a_blob(files: FileBlobStore) -> None:
    await files.put("media/org1/blob1", chunks_of([b"x"]), max_size=1)
    assert await files.size("media/org1") is None
    with pytest.raises(BlobNotFound):
        await files.open("media/org1")
    await files.delete("media/org1")  # not a blob: nothing to delete
    assert await files.size("media/org1/blob1") == 1
    # A key below a blob cannot be written: the blob is not a directory.
    with pytest.raises(BlobStoreError):
        await files.put("media/org1/blob1/inner", chunks_of([b"y"]), max_size=1)
    assert await files.size("media/org1/blob1/inner") is None


async def test_a_blob_removed_while_open_is_still_read_whole(files: FileBlobStore) -> None:
    data = random.Random(3).randbytes(300_000)
    await files.put("k", chunks_of([data]), max_size=len(data))
    stream = await files.open("k", chunk_size=1000)
    await files.delete("k")
    await files.put("k", chunks_of([b"replaced"]), max_size=len(data))
    assert b"".join([chunk async for chunk in stream]) == data


async def test_many_tiny_chunks(files: FileBlobStore) -> None:
    data = random.Random(4).randbytes(200_000)
    stored = await files.put(
        "k", chunks_of(data[i : i + 1] for i in range(len(data))), max_size=len(data)
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(files, "k") == data


# ---------------------------------------------------------------------------------------------
# S3 (moto on 127.0.0.1)


async def test_s3_multipart_upload(moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    store = moto_s3.s3_store(bucket, multipart_threshold=5 * MIB, part_size=5 * MIB)
    data = random.Random(5).randbytes(11 * MIB + 3)  # three parts: 5 MiB, 5 MiB, 1 MiB + 3
    try:
        stored = await store.put(
            "media/big",
            chunks_of(data[i : i + MIB] for i in range(0, len(data), MIB)),
            max_size=len(data),
        )
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        head = moto_s3.client().head_object(Bucket=bucket, Key="media/big")
        assert head["ETag"].strip('"').endswith("-3")  # a multipart object of three parts
        assert moto_s3.pending_uploads(bucket) == []
        assert await store.size("media/big") == len(data)
        tail = [c async for c in store.open("media/big", start=10 * MIB, chunk_size=MIB)]
        assert b"".join(tail) == data[10 * MIB :]
    finally:
        await store.aclose()


async def test_s3_failed_multipart_upload_is_aborted(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = moto_s3.new_bucket()
    store = moto_s3.s3_store(bucket, multipart_threshold=5 * MIB, part_size=5 * MIB)
    data = random.Random(6).randbytes(12 * MIB)
    try:
        await store.start()
        client = store._client
        real_upload_part = client.upload_part
        parts = 0

        async def upload_part_then_lose_the_connection(**kwargs: Any) -> Any:
            nonlocal parts
            parts += 1
            if parts == 2:
                raise EndpointConnectionError(endpoint_url=moto_s3.endpoint_url)
            return await real_upload_part(**kwargs)

        monkeypatch.setattr(client, "upload_part", upload_part_then_lose_the_connection)
        with pytest.raises(BlobStoreError) as caught:
            await store.put("media/big", chunks_of([data]), max_size=len(data))
        assert "EndpointConnectionError" in str(caught.value)
        assert parts == 2
        assert moto_s3.pending_uploads(bucket) == []
        assert moto_s3.object_keys(bucket) == []
    finally:
        await store.aclose()


async def test_s3_key_prefix(moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    store = moto_s3.s3_store(bucket, key_prefix="/gateway-7/")
    try:
        assert store.key_prefix == "gateway-7/"
        await store.put("media/x", chunks_of([b"bytes"]), max_size=5)
        assert moto_s3.object_keys(bucket) == ["gateway-7/media/x"]
        assert await read_all(store, "media/x") == b"bytes"
        await store.delete("media/x")
        assert moto_s3.object_keys(bucket) == []
    finally:
        await store.aclose()


def test_s3_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        S3BlobStore(bucket="")
    with pytest.raises(ValueError):
        S3BlobStore(bucket="b", access_key_id="only-the-id")
    with pytest.raises(ValueError):
        S3BlobStore(bucket="b", part_size=MIB)
    with pytest.raises(ValueError):
        S3BlobStore(bucket="b", key_prefix="../up")


async def test_s3_errors_name_no_secret(moto_s3: MotoS3) -> None:
    secret = "do-not-show-this-secret-0123456789"
    store = S3BlobStore(
        bucket="no-such-bucket",
        endpoint_url=moto_s3.endpoint_url,
        access_key_id="AKIDEXAMPLE",
        secret_access_key=secret,
    )
    try:
        with pytest.raises(BlobStoreError) as caught:
            await store.put("media/x", chunks_of([b"x"]), max_size=1)
        assert "NoSuchBucket" in str(caught.value)
        with pytest.raises(BlobStoreError) as caught_read:
            await store.open("media/x")
        for error in (caught.value, caught_read.value):
            assert secret not in str(error)
            assert secret not in repr(error)
        assert secret not in repr(store)
    finally:
        await store.aclose()


async def test_s3_unreachable_store_is_an_error(moto_s3: MotoS3) -> None:
    # A port nothing listens on: one a socket was given and closed at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3BlobStore(
        bucket="b",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="a",
        secret_access_key="b",
        timeout_s=2,
    )
    try:
        with pytest.raises(BlobStoreError):
            await store.size("media/x")
    finally:
        await store.aclose()


async def test_s3_one_client_for_the_store(moto_s3: MotoS3) -> None:
    store = moto_s3.s3_store(moto_s3.new_bucket())
    try:
        await store.start()
        client = store._client
        await store.put("k", chunks_of([b"1"]), max_size=1)
        await store.size("k")
        assert store._client is client
    finally:
        await store.aclose()
    assert store._client is None


# ---------------------------------------------------------------------------------------------
# The fixture other media tests use


async def test_media_blobs_follows_the_environment(media_blobs: BlobStore) -> None:
    expected = {"file": FileBlobStore, "s3": S3BlobStore}[blob_store_kind()]
    assert isinstance(media_blobs, expected)
    await media_blobs.put("media/x", chunks_of([b"x"]), max_size=1)
    assert await media_blobs.size("media/x") == 1
