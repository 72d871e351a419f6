"""(ext) The conversation signals in the API (docs/format.md, "Conversation signals"):
a ``SignalRequest`` as the core's, its outcome as a ``SignalReply``."""

from __future__ import annotations

from msgbridge.v1 import gateway_pb2

from ..core import Signal, SignalOutcome, SignalRequest

__all__ = ["signal_reply", "signal_request"]


def signal_request(request: gateway_pb2.SignalRequest, signal: Signal) -> SignalRequest:
    """What the core takes for a ``SendTyping`` or ``MarkRead`` (``signal``) call."""
    return SignalRequest(
        signal=signal,
        org_id=request.org_id,
        from_number=getattr(request, "from"),
        to=request.to,
        provider_message_id=request.provider_message_id,
        integration_id=request.integration_id,
        extension=request.extension,
        domain=request.domain,
    )


def signal_reply(outcome: SignalOutcome) -> gateway_pb2.SignalReply:
    return gateway_pb2.SignalReply(
        installation_id=outcome.installation_id,
        integration_id=outcome.integration_id,
        provider_status=outcome.provider_status,
    )
