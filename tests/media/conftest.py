"""Blob store fixtures for the media tests (the helpers are in tests/media_support.py).

- ``moto_s3`` (session): moto's S3 server on 127.0.0.1, started only when a test needs it.
- ``blob_backend``: every test using it runs once per backend (files, then S3 on moto), with a
  new, empty store and a way to see everything the store left in its storage.
- ``media_blobs``: one store of the kind ``MSGBRIDGE_TEST_BLOBS`` names (default files), for
  tests of the parts built on a store, which need not run twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.media import BlobStore
from tests.media_support import (
    BLOB_STORE_KINDS,
    BlobBackend,
    MotoS3,
    blob_store_kind,
    start_moto_s3,
)
from tests.media_support import blob_backend as make_backend


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    moto = start_moto_s3()
    try:
        yield moto
    finally:
        moto.stop()


def _backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> BlobBackend:
    moto: MotoS3 | None = request.getfixturevalue("moto_s3") if kind == "s3" else None
    return make_backend(kind, tmp_path=tmp_path, moto=moto)


@pytest.fixture(params=BLOB_STORE_KINDS)
async def blob_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BlobBackend]:
    backend = _backend(request.param, tmp_path, request)
    try:
        yield backend
    finally:
        await backend.store.aclose()


@pytest.fixture
async def media_blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    backend = _backend(blob_store_kind(), tmp_path, request)
    try:
        yield backend.store
    finally:
        await backend.store.aclose()
