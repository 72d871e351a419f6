"""Media the gateway keeps (docs/media.md): inbound files it fetched, outbound files it hosts.

- Blobs are kept behind one interface, :class:`BlobStore`: :class:`FileBlobStore` (files under the
  data directory, the default) or :class:`S3BlobStore` (any S3-compatible object store, for
  replicas), under keys the gateway makes (:func:`blob_key`). Every error is a
  :class:`BlobStoreError`.
- :class:`MediaSigner` makes and checks the signed, expiring URLs, with keys derived from the
  operator's key file (rotated keys still verify).
- :func:`sniff_content_type` tells a file's content type from its first bytes (a provider's
  ``Content-Type`` is never trusted); :data:`MMS_CONTENT_TYPES` are the types taken by default
  (docs/format.md, "Media", says how a definition names its own).
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
from ._signing import MEDIA_KEY_PURPOSE, MediaSigner
from ._sniff import (
    MMS_CONTENT_TYPES,
    SNIFF_BYTES,
    UNKNOWN_CONTENT_TYPE,
    SniffedStream,
    sniff_content_type,
)

__all__ = [
    "MEDIA_KEY_PURPOSE",
    "MMS_CONTENT_TYPES",
    "SNIFF_BYTES",
    "UNKNOWN_CONTENT_TYPE",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStream",
    "BlobTooLarge",
    "FileBlobStore",
    "MediaSigner",
    "S3BlobStore",
    "SniffedStream",
    "StoredBlob",
    "blob_key",
    "check_key",
    "sniff_content_type",
]
