"""Media: stored files the gateway serves at signed URLs (docs/architecture.md).

- :class:`MediaSigner` makes and checks the signed, expiring URLs, with keys derived from the
  operator's key file (rotated keys still verify).
- :func:`sniff_content_type` tells a file's content type from its first bytes (a provider's
  ``Content-Type`` is never trusted); :class:`ContentTypePolicy` and :func:`allowed` say whether
  a type is among the allowed ones (``image/*``, ``video/mp4`` …).
"""

from ._signing import MEDIA_KEY_PURPOSE, MediaSigner
from ._sniff import (
    MMS_CONTENT_TYPES,
    SNIFF_BYTES,
    UNKNOWN_CONTENT_TYPE,
    ContentTypePolicy,
    allowed,
    sniff_content_type,
)

__all__ = [
    "MEDIA_KEY_PURPOSE",
    "MMS_CONTENT_TYPES",
    "SNIFF_BYTES",
    "UNKNOWN_CONTENT_TYPE",
    "ContentTypePolicy",
    "MediaSigner",
    "allowed",
    "sniff_content_type",
]
