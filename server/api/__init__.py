"""The gRPC surface: servicers that turn requests into calls on :mod:`server.core` and records
into protobuf replies, within the reply size budget.

- :class:`GatewayServicer` (``_gateway``): the ``msgbridge.v1.Gateway`` service (integrations,
  installations, sends, messages, the event stream, unmatched webhooks).
- :class:`IngestServicer` (``_ingest``): the ``msgbridge.v1.Ingest`` service the sidecar forwards
  webhooks to; ``_delivery_stream`` answers the many of one long-lived ``IngestWebhooks`` call.
- ``_rpc``: the one error boundary of every RPC, unary and streaming (a :class:`GatewayError`'s
  status with google.rpc details; a store failure UNAVAILABLE; anything else INTERNAL with an
  incident id).
- ``_authorize``: who calls, and whether the request may touch the records it names.
- ``_paging``: the List RPCs' page tokens, page filling and next tokens.
- ``_convert``: records to protobuf messages (:func:`event_pb` and the others), requests to the
  core's inputs, and the enum tables between them.
- :class:`MediaRpcs` (``_media``): UploadMedia, GetMedia, SendFile's ``media_id`` and the
  sidecar's ReadMedia (docs/media.md).
- ``_replies``: the reply size budget (pages filled by bytes, records cut to fit).
- :func:`add_lenient_servicer` (``_decoding``): registers a servicer whose methods answer a
  request that is not valid protobuf INVALID_ARGUMENT (grpc alone answers UNKNOWN and logs a
  traceback).
"""

from ._convert import event_pb
from ._decoding import UNDECODABLE, add_lenient_servicer
from ._delivery_stream import DeliveryStreams
from ._gateway import GatewayServicer
from ._ingest import IngestServicer
from ._media import MediaRpcs

__all__ = [
    "UNDECODABLE",
    "DeliveryStreams",
    "GatewayServicer",
    "IngestServicer",
    "MediaRpcs",
    "add_lenient_servicer",
    "event_pb",
]
