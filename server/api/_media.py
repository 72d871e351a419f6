"""The media RPCs (docs/media.md): UploadMedia, GetMedia, SendFile's ``media_id``, and the
sidecar's ReadMedia — over the core's :class:`~server.core.media.MediaLibrary`."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from msgbridge.v1 import gateway_pb2, ingest_pb2

from ..core.media import MediaLibrary
from ..engine import content_type_allowed
from ..errors import InvalidRequest, Unimplemented
from ..security.api_access import Caller
from ._convert import media_info_pb

__all__ = ["CHUNK_BYTES", "MediaRpcs"]

#: Largest chunk of a file in one message, both ways (the issue's "chunks ≤ 1 MiB").
CHUNK_BYTES: Final = 1 << 20
_READ_CHUNK: Final = 256 * 1024
# A hosted file's URL outlives its message's time in the queue by this much: a provider may
# fetch the file some time after the send (docs/media.md, "Sending a stored file").
_HOSTED_MARGIN: Final = timedelta(days=1)

#: The content types an integration takes (docs/format.md, "Media").
AllowedFor = Callable[[str], Awaitable[Sequence[str]]]


def _allowed(content_type: str, *, patterns: Sequence[str]) -> bool:
    return content_type_allowed(content_type, patterns)


def _off() -> Unimplemented:
    return Unimplemented("media is not configured on this gateway", reason="MEDIA_OFF")


class MediaRpcs:
    """The media calls of the Gateway and Ingest services; ``library`` None: media is off."""

    def __init__(
        self,
        library: MediaLibrary | None,
        *,
        send_max_age_s: float,
        allowed_for: AllowedFor | None = None,
    ) -> None:
        self._library = library
        self._send_max_age = timedelta(seconds=send_max_age_s)
        self._allowed_for = allowed_for

    def media_url(self, media_id: str) -> tuple[str, datetime]:
        if self._library is None:
            raise _off()
        return self._library.signed_url(media_id)

    @property
    def signs(self) -> bool:
        return self._library is not None

    async def upload(
        self, requests: AsyncIterator[gateway_pb2.UploadMediaRequest], caller: Caller
    ) -> gateway_pb2.MediaInfo:
        library = self._library
        if library is None:
            raise _off()
        first = await anext(requests, None)
        if first is None or first.WhichOneof("part") != "start":
            raise InvalidRequest(
                "the first message of an upload is its start", reason="MEDIA_UPLOAD_NO_START"
            )
        start = first.start
        caller.check_org(start.org_id)
        if not start.org_id:
            raise InvalidRequest("org_id is required", reason="MEDIA_UPLOAD_NO_ORG")

        async def chunks() -> AsyncIterator[bytes]:
            async for message in requests:
                if message.WhichOneof("part") != "chunk":
                    raise InvalidRequest(
                        "an upload has one start", reason="MEDIA_UPLOAD_TWO_STARTS"
                    )
                if len(message.chunk) > CHUNK_BYTES:
                    raise InvalidRequest(
                        f"a chunk is at most {CHUNK_BYTES} bytes", reason="MEDIA_CHUNK_TOO_LARGE"
                    )
                yield message.chunk

        allowed = None
        if start.integration_id and self._allowed_for is not None:
            patterns = await self._allowed_for(start.integration_id)
            allowed = functools.partial(_allowed, patterns=patterns)
        record = await library.upload(
            org_id=start.org_id,
            filename=start.filename,
            chunks=chunks(),
            allowed=allowed,
            integration_id=start.integration_id,
        )
        return media_info_pb(record, library.signed_url)

    async def get(
        self, request: gateway_pb2.GetMediaRequest, caller: Caller
    ) -> AsyncIterator[gateway_pb2.GetMediaResponse]:
        library = self._library
        if library is None:
            raise _off()
        orgs = frozenset({request.org_id}) if request.org_id else caller.orgs
        record = await library.get(request.media_id, org_ids=orgs)
        yield gateway_pb2.GetMediaResponse(info=media_info_pb(record, library.signed_url))
        async for chunk in library.read(record):
            for at in range(0, len(chunk), CHUNK_BYTES):
                yield gateway_pb2.GetMediaResponse(chunk=chunk[at : at + CHUNK_BYTES])

    async def hosted(
        self, request: gateway_pb2.SendFileRequest, caller: Caller
    ) -> gateway_pb2.SendFileRequest:
        """A SendFile naming an uploaded file, as one giving its signed URL (valid beyond the
        message's longest time in the queue and its ``send_at``); other requests unchanged."""
        if not request.media_id:
            return request
        library = self._library
        if library is None:
            raise _off()
        if request.media_url:
            raise InvalidRequest("give media_url or media_id, not both", reason="MEDIA_URL_AND_ID")
        orgs = caller.orgs if not request.org_id else frozenset({request.org_id})
        record = await library.get(request.media_id, org_ids=orgs)
        now = datetime.now(UTC)
        start = now
        if request.options.HasField("send_at"):
            start = max(now, request.options.send_at.ToDatetime(UTC))
        url, _ = library.signed_url(
            record.id,
            valid_until=max(start + self._send_max_age + _HOSTED_MARGIN, now + library.url_ttl),
        )
        hosted = gateway_pb2.SendFileRequest()
        hosted.CopyFrom(request)
        hosted.media_url = url
        hosted.media_id = ""
        if not hosted.media_type:
            hosted.media_type = record.content_type
        return hosted

    async def read(self, request: ingest_pb2.MediaRead) -> AsyncIterator[ingest_pb2.MediaPart]:
        """The sidecar's signed media URL: the head (found or not), then the bytes."""
        library = self._library
        record = (
            None
            if library is None
            else await library.verified(request.media_id, request.expires_at, request.signature)
        )
        if library is None or record is None:
            yield ingest_pb2.MediaPart(head=ingest_pb2.MediaPart.Head(found=False))
            return
        yield ingest_pb2.MediaPart(
            head=ingest_pb2.MediaPart.Head(
                found=True, content_type=record.content_type, size=record.size
            )
        )
        if request.head_only:
            return
        end = request.end or None
        async for chunk in library.read(record, request.start, end):
            for at in range(0, len(chunk), _READ_CHUNK):
                yield ingest_pb2.MediaPart(chunk=chunk[at : at + _READ_CHUNK])
