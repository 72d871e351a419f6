"""Blob stores for tests: moto's S3 server on 127.0.0.1, and a store of either kind over it.

To run a media suite against S3 rather than files, set ``MSGBRIDGE_TEST_BLOBS=s3``
(``blob_store_kind()``; the ``media_blobs`` fixture of tests/media/conftest.py follows it).

``start_moto_s3()`` starts moto's S3 server in this process on a free loopback port and returns a
:class:`MotoS3` (its endpoint, the credentials it accepts, ``new_bucket()``, ``stop()``).
``blob_store(kind, ...)`` makes a :class:`server.media.FileBlobStore` or
:class:`server.media.S3BlobStore` (in a bucket of its own): a suite parametrized over
``BLOB_STORE_KINDS`` runs against both. tests/media/conftest.py holds the pytest fixtures.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from server.media import BlobStore, FileBlobStore, S3BlobStore

__all__ = [
    "BLOB_STORE_ENV",
    "BLOB_STORE_KINDS",
    "BlobBackend",
    "MotoS3",
    "blob_backend",
    "blob_store",
    "blob_store_kind",
    "chunks_of",
    "start_moto_s3",
]

BLOB_STORE_KINDS: Final = ("file", "s3")
BLOB_STORE_ENV: Final = "MSGBRIDGE_TEST_BLOBS"
REGION: Final = "us-east-1"


@dataclass(kw_only=True)
class MotoS3:
    """moto's S3 server running in this process. Any key is accepted; these are the test's."""

    endpoint_url: str
    server: Any
    region: str = REGION
    access_key_id: str = "testing"
    secret_access_key: str = "testing"
    _client: Any = field(default=None, repr=False)

    def client(self) -> Any:
        """A synchronous boto3 S3 client on the server, for setting up and looking."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
            )
        return self._client

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name; its name."""
        name = f"test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def object_keys(self, bucket: str) -> list[str]:
        """Every object key in ``bucket``."""
        listing = self.client().list_objects_v2(Bucket=bucket)
        return [item["Key"] for item in listing.get("Contents", [])]

    def pending_uploads(self, bucket: str) -> list[str]:
        """The keys of multipart uploads begun in ``bucket`` and neither completed nor aborted."""
        listing = self.client().list_multipart_uploads(Bucket=bucket)
        return [item["Key"] for item in listing.get("Uploads", [])]

    def s3_store(self, bucket: str, **options: Any) -> S3BlobStore:
        return S3BlobStore(
            bucket=bucket,
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            **options,
        )

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.server.stop()


def start_moto_s3() -> MotoS3:
    """Start moto's S3 server on 127.0.0.1 at a port the system picks."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return MotoS3(endpoint_url=f"http://{host}:{port}", server=server)


def blob_store(
    kind: str, *, tmp_path: Path, moto: MotoS3 | None = None, **options: Any
) -> BlobStore:
    """A new, empty store: ``file`` under ``tmp_path / "media"``, ``s3`` in a new bucket."""
    if kind == "file":
        return FileBlobStore(tmp_path / "media", **options)
    if kind == "s3":
        if moto is None:
            raise ValueError("an s3 blob store needs the moto server")
        return moto.s3_store(moto.new_bucket(), **options)
    raise ValueError(f"unknown blob store kind {kind!r}: one of {BLOB_STORE_KINDS}")


def blob_store_kind() -> str:
    """The kind of blob store a media suite runs on: ``MSGBRIDGE_TEST_BLOBS``, default ``file``."""
    kind = os.environ.get(BLOB_STORE_ENV, "file")
    if kind not in BLOB_STORE_KINDS:
        raise ValueError(f"{BLOB_STORE_ENV}={kind!r}: one of {BLOB_STORE_KINDS}")
    return kind


@dataclass(frozen=True, kw_only=True, slots=True)
class BlobBackend:
    """A new, empty store of one kind, and what its storage holds."""

    kind: str
    store: BlobStore
    leftovers: Callable[[], list[str]]
    """Everything in the store's storage: the files under its root (temporary ones too), or its
    bucket's object keys and multipart uploads neither completed nor aborted."""


def blob_backend(kind: str, *, tmp_path: Path, moto: MotoS3 | None = None) -> BlobBackend:
    store = blob_store(kind, tmp_path=tmp_path, moto=moto)
    if isinstance(store, FileBlobStore):
        root = store.root
        return BlobBackend(kind=kind, store=store, leftovers=lambda: _files_under(root))
    assert isinstance(store, S3BlobStore) and moto is not None
    bucket = store.bucket
    return BlobBackend(
        kind=kind,
        store=store,
        leftovers=lambda: sorted(moto.object_keys(bucket) + moto.pending_uploads(bucket)),
    )


def _files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if not path.is_dir())


async def chunks_of(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    """``parts`` as a put takes them, yielding to the loop between two."""
    for part in parts:
        await asyncio.sleep(0)
        yield part
