"""A Gateway servicer with only the delivery pipeline's RPCs, served by grpc.aio on 127.0.0.1.

It stands in for the server's queued sends, ListMessages and CancelMessage (issue 16) so that the
client and the CLI are tested over a real socket on their own; it records every request it
receives, and answers as the API's comments in gateway.proto say the real one does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc.aio
from _fake_gateway import RECEIVED, rich_status
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2
from grpc_status import rpc_status

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

LATER = timestamp_pb2.Timestamp(seconds=RECEIVED.seconds + 600)
CURRENT_LIMITS = gateway_pb2.SendLimits(
    per_number=gateway_pb2.Throughput(per_second=1, unit=gateway_pb2.Throughput.MESSAGES),
    max_queued=100,
    max_segments=4,
)
NOT_CANCELLABLE = rich_status(
    code_pb2.FAILED_PRECONDITION,
    "message msg-sent is SENT: only a queued message can be cancelled",
    reason="MESSAGE_NOT_CANCELLABLE",
)


def message(
    message_id: str, state: gateway_pb2.Message.State.ValueType, **fields: Any
) -> gateway_pb2.Message:
    made = gateway_pb2.Message(
        message_id=message_id,
        org_id="acme",
        installation_id="inst-1",
        integration_id="acme",
        to="+15550002222",
        text="hi",
        state=state,
        encoding="GSM-7",
        segments=1,
        created_at=RECEIVED,
        **fields,
    )
    setattr(made, "from", "+15550001111")
    return made


MESSAGES = [
    message("msg-3", gateway_pb2.Message.QUEUED, send_at=LATER, next_attempt_at=LATER),
    message("msg-2", gateway_pb2.Message.FAILED, error="PROVIDER_REJECTED: bad number"),
    message("msg-1", gateway_pb2.Message.SENT, provider_message_id="SM1", provider_status=201),
]


class DeliveryGateway(gateway_pb2_grpc.GatewayServicer):
    """Records ``(method, request)``; two-page listings; a sent message cannot be cancelled."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Message]] = []

    def requests(self, method: str) -> list[Any]:
        return [request for name, request in self.received if name == method]

    def _reply(self, request: Any) -> gateway_pb2.SendReply:
        waiting = request.options.mode == gateway_pb2.SendOptions.QUEUE or request.options.HasField(
            "send_at"
        )
        reply = gateway_pb2.SendReply(
            message_id="msg-9",
            installation_id="inst-1",
            integration_id="acme",
            encoding="UCS-2" if any(ord(c) > 0xFFFF for c in request.text) else "GSM-7",
            segments=1 if request.text else 0,
        )
        if waiting:
            reply.state = gateway_pb2.Message.QUEUED
        else:
            reply.state = gateway_pb2.Message.SENT
            reply.provider_message_id = "SM9"
            reply.provider_status = 201
            reply.attempts = 1
        return reply

    async def SendMessage(self, request: Any, context: Any) -> Any:
        self.received.append(("SendMessage", request))
        return self._reply(request)

    async def SendFile(self, request: Any, context: Any) -> Any:
        self.received.append(("SendFile", request))
        return self._reply(request)

    async def ListMessages(self, request: Any, context: Any) -> Any:
        self.received.append(("ListMessages", request))
        if request.page_token == "":
            return gateway_pb2.ListMessagesResponse(messages=MESSAGES[:2], next_page_token="p2")
        return gateway_pb2.ListMessagesResponse(messages=MESSAGES[2:])

    async def CancelMessage(self, request: Any, context: Any) -> Any:
        self.received.append(("CancelMessage", request))
        if request.message_id == "msg-sent":
            await context.abort_with_status(rpc_status.to_status(NOT_CANCELLABLE))
        return message(request.message_id, gateway_pb2.Message.CANCELLED, send_at=LATER)

    @staticmethod
    def _installation(request: Any, installation_id: str) -> gateway_pb2.Installation:
        installation = gateway_pb2.Installation(
            id=installation_id, org_id="acme", integration_id="acme", numbers=request.numbers
        )
        installation.send_limits.CopyFrom(request.send_limits)
        return installation

    async def EnableIntegration(self, request: Any, context: Any) -> Any:
        self.received.append(("EnableIntegration", request))
        return self._installation(request, "inst-1")

    async def UpdateInstallation(self, request: Any, context: Any) -> Any:
        self.received.append(("UpdateInstallation", request))
        return self._installation(request, request.installation_id)

    async def GetInstallation(self, request: Any, context: Any) -> Any:
        self.received.append(("GetInstallation", request))
        installation = gateway_pb2.Installation(id=request.installation_id, org_id="acme")
        installation.send_limits.CopyFrom(CURRENT_LIMITS)
        return installation


@asynccontextmanager
async def serving(servicer: DeliveryGateway) -> AsyncIterator[str]:
    """Serves ``servicer`` on 127.0.0.1, port 0, on the running loop; yields its target."""
    server = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
