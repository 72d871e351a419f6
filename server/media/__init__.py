"""Media the gateway keeps: inbound MMS media it fetched, outbound files it hosts (issue 17).

Blobs are kept behind one interface, :class:`BlobStore`: :class:`FileBlobStore` (files under the
data directory, the default) or :class:`S3BlobStore` (any S3-compatible object store, for
replicas). Every error is a :class:`BlobStoreError`.
"""

from ._blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStream,
    BlobTooLarge,
    StoredBlob,
    blob_key,
    check_key,
)
from ._file_blobs import FileBlobStore
from ._s3 import S3BlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStream",
    "BlobTooLarge",
    "FileBlobStore",
    "S3BlobStore",
    "StoredBlob",
    "blob_key",
    "check_key",
]
