"""The msgbridge client: typed async and sync clients of the Gateway service, and their errors.

    async with await AsyncClient.connect("localhost:50051") as client:
        reply = await client.send_message(org_id="acme", from_="+15550001", to="+15550002",
                                          text="hello")

Methods return the generated protobuf messages of ``msgbridge.v1.gateway_pb2``; how a send waits
(``SendOptions``) and an installation's limits (``SendLimits``, ``Throughput``, ``Number``) are
given as frozen dataclasses. Files (docs/media.md): ``upload_media`` takes an ``UploadSource``
(bytes, a path, a binary file or chunks) and returns its ``MediaInfo``, whose ``media_id``
``send_file`` sends; ``get_media`` returns a stored file, ``download_media`` writes it to a
``MediaDestination``. (ext) A message's quick replies and template are ``QuickReply`` and
``MessageTemplate`` (docs/format.md, "Replies, templates and reply-to").
"""

from ._client import DEFAULT_TARGET, AsyncClient, Client
from ._delivery import (
    MessageState,
    Number,
    RateUnit,
    SendLimits,
    SendMode,
    SendOptions,
    Throughput,
)
from ._errors import (
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    MsgbridgeError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from ._media import AsyncUploadSource, MediaDestination, UploadSource
from ._options import ClientOptions, TLSConfig
from ._requests import EventType, NumberAssignments, sender
from ._rich import MessageTemplate, QuickReply

__all__ = [
    "DEFAULT_TARGET",
    "AlreadyExistsError",
    "AsyncClient",
    "AsyncUploadSource",
    "CancelledError",
    "Client",
    "ClientOptions",
    "DeadlineExceededError",
    "EventType",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MediaDestination",
    "MessageState",
    "MessageTemplate",
    "MsgbridgeError",
    "NotFoundError",
    "Number",
    "NumberAssignments",
    "PermissionDeniedError",
    "QuickReply",
    "RateUnit",
    "ResourceExhaustedError",
    "SendLimits",
    "SendMode",
    "SendOptions",
    "TLSConfig",
    "Throughput",
    "UnauthenticatedError",
    "UnavailableError",
    "UploadSource",
    "sender",
]
