"""The gateway's stored files (docs/media.md): uploads for SendFile, signed URLs, and reading a
file back — for GetMedia and for the sidecar's media route (its ``MediaReader``, in-process or
through the Ingest service) — and their retention.

A signed URL names a file and an expiry; the signature is an HMAC under a key derived from the
secret key file (:class:`~server.media.MediaSigner`), so rotated keys still verify and any change
to the URL is refused. A file is read only through such a URL or by a caller of its organisation.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Final

from ...errors import InvalidRequest, NotFound
from ...media import (
    BlobStore,
    BlobTooLarge,
    MediaSigner,
    SniffedStream,
    blob_key,
)
from ...store import MediaOrigin, MediaRecord, Store

__all__ = ["MediaLibrary"]

logger = logging.getLogger(__name__)

_PURGE_BATCH: Final = 500


class MediaLibrary:
    """Uploads, signed URLs, reads and retention of stored files."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        signer: MediaSigner,
        public_url: str,
        url_ttl_s: float,
        max_item_bytes: int,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._signer = signer
        self._public_url = public_url.rstrip("/")
        #: How long a signed URL is valid by default.
        self.url_ttl = timedelta(seconds=url_ttl_s)
        self.max_item_bytes = max_item_bytes

    # --- URLs --------------------------------------------------------------------------------

    def signed_url(
        self, media_id: str, *, valid_until: datetime | None = None
    ) -> tuple[str, datetime]:
        """A signed URL of the file and when it expires: ``valid_until`` (rounded up to the
        second), or the setting's time from now."""
        until = valid_until if valid_until is not None else datetime.now(UTC) + self.url_ttl
        expires_at = int(until.timestamp()) + (0 if until.microsecond == 0 else 1)
        return (
            self._signer.url(self._public_url, media_id, expires_at),
            datetime.fromtimestamp(expires_at, UTC),
        )

    # --- uploads -----------------------------------------------------------------------------

    async def upload(
        self,
        *,
        org_id: str,
        filename: str,
        chunks: AsyncIterable[bytes],
        allowed: Callable[[str], bool] | None = None,
        max_bytes: int | None = None,
        integration_id: str = "",
    ) -> MediaRecord:
        """Keep an uploaded file. INVALID_ARGUMENT ``MEDIA_TOO_LARGE`` over the cap,
        ``MEDIA_TYPE_NOT_ALLOWED`` for a type ``allowed`` refuses, ``MEDIA_EMPTY`` for no bytes;
        nothing is kept then."""
        cap = min(self.max_item_bytes, max_bytes or self.max_item_bytes)
        media_id = uuid.uuid4().hex
        key = blob_key(org_id, media_id)
        sniffed = SniffedStream(chunks)
        try:
            stored = await self._blobs.put(key, sniffed, max_size=cap)
        except BlobTooLarge:
            raise InvalidRequest(
                f"the file is larger than {cap} bytes", reason="MEDIA_TOO_LARGE"
            ) from None
        if stored.size == 0:
            await self._blobs.delete(key)
            raise InvalidRequest("the file is empty", reason="MEDIA_EMPTY")
        content_type = sniffed.content_type
        if allowed is not None and not allowed(content_type):
            await self._blobs.delete(key)
            raise InvalidRequest(
                f"files of type {content_type} are not allowed", reason="MEDIA_TYPE_NOT_ALLOWED"
            )
        record = MediaRecord(
            id=media_id,
            org_id=org_id,
            installation_id="",
            integration_id=integration_id,
            origin=MediaOrigin.UPLOAD,
            blob_key=key,
            content_type=content_type,
            size=stored.size,
            sha256=stored.sha256,
            source=filename[:255],
            created_at=datetime.now(UTC),
        )
        await self._store.put_media(record)
        logger.info("file uploaded", extra={"size": stored.size, "content_type": content_type})
        return record

    # --- reading -----------------------------------------------------------------------------

    async def get(self, media_id: str, *, org_ids: Collection[str] | None) -> MediaRecord:
        """The file's record, when it is of one of ``org_ids`` (None: any). NOT_FOUND
        otherwise — the same answer for a file of another organisation."""
        record = await self._store.get_media(media_id) if media_id else None
        if record is None or (org_ids is not None and record.org_id not in org_ids):
            raise NotFound(f"no file {media_id!r}", reason="MEDIA_NOT_FOUND")
        return record

    def read(
        self, record: MediaRecord, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes ``[start, end)``, in chunks."""
        return self._blobs.open(record.blob_key, start=start, end=end)

    async def verified(self, media_id: str, expires_at: int, signature: str) -> MediaRecord | None:
        """The file a signed URL names, when the signature holds and has not expired; else
        None (the sidecar answers 404 to both)."""
        now = int(datetime.now(UTC).timestamp())
        if not self._signer.verify(media_id, expires_at, signature, now=now):
            return None
        return await self._store.get_media(media_id)

    # --- retention ---------------------------------------------------------------------------

    async def purge(self, before: datetime) -> int:
        """Delete the files created before ``before``, blob first; how many."""
        deleted = 0
        while True:
            expired = await self._store.expired_media(before, limit=_PURGE_BATCH)
            if not expired:
                return deleted
            for record in expired:
                await self._blobs.delete(record.blob_key)  # an absent blob is fine
            deleted += await self._store.delete_media([r.id for r in expired])
            if len(expired) < _PURGE_BATCH:
                return deleted
