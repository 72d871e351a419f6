"""The gRPC surface: servicers that turn requests into calls on :mod:`server.core` and records
into protobuf replies, within the reply size budget.

- :class:`GatewayServicer`: the ``msgbridge.v1.Gateway`` service (integrations, installations,
  sends, messages, the event stream, unmatched webhooks).
- :class:`IngestServicer`: the ``msgbridge.v1.Ingest`` service the sidecar forwards webhooks to.
- ``_rpc``: the one error boundary of every RPC, unary and streaming.
"""

from ._gateway import GatewayServicer, IngestServicer, event_pb

__all__ = ["GatewayServicer", "IngestServicer", "event_pb"]
