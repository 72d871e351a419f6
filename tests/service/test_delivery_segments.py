"""Encoding and SMS segments over real sockets (docs/delivery.md, "Segments"; issue 16): the
reply and the message record carry them — GSM-7 in 160 septets or parts of 153, its extension
characters (`€`, `[`) counting two; UCS-2 in 70 units or parts of 67, an emoji counting two —
and an installation's `max_segments` refuses a longer text before anything reaches the provider."""

from __future__ import annotations

import grpc

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from ._delivery import fails, fast_gateway, message
from .conftest import GatewayFactory, rpc_details

EMOJI = "\N{GRINNING FACE}"  # outside the BMP: two UCS-2 units
CYRILLIC = "\N{CYRILLIC SMALL LETTER ZHE}"  # in the BMP, not in GSM-7: one unit

CASES = [
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 153 * 2, "GSM-7", 2),
    ("a" * 153 * 2 + "a", "GSM-7", 3),
    ("a" * 154 * 2, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1),  # 160 septets
    ("€" * 81, "GSM-7", 2),  # 162 septets
    ("[" * 80, "GSM-7", 1),
    ("a" * 159 + "[", "GSM-7", 2),  # 161 septets
    ("Price: 5€ [net]", "GSM-7", 1),
    (CYRILLIC * 70, "UCS-2", 1),
    (CYRILLIC * 71, "UCS-2", 2),
    (EMOJI * 35, "UCS-2", 1),  # 70 units
    (CYRILLIC * 68 + EMOJI, "UCS-2", 1),  # 70 units
    (CYRILLIC * 69 + EMOJI, "UCS-2", 2),  # 71 units
    ("a" * 69 + EMOJI, "UCS-2", 2),  # one emoji makes the whole text UCS-2
    (CYRILLIC * 67 * 2, "UCS-2", 2),
    (CYRILLIC * 67 * 2 + "a", "UCS-2", 3),
]


async def test_the_reply_and_the_record_carry_the_encoding_and_segments(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    for text, encoding, segments in CASES:
        reply = await gateway.send(text=text)
        case = f"{len(text)} × {text[-1]!r}"
        assert (reply.encoding, reply.segments) == (encoding, segments), case
        record = await message(gateway, reply.message_id)
        assert (record.encoding, record.segments) == (encoding, segments), case
        assert provider.state.requests_to("/messages")[-1].json["content"] == text
    assert len(provider.state.requests_to("/messages")) == len(CASES)


async def test_max_segments_refuses_a_longer_text(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    limits = gateway_pb2.SendLimits(max_segments=2)
    gateway = await fast_gateway(start_gateway, provider.url, limits=limits)

    assert (await gateway.send(text="a" * 306)).segments == 2
    assert (await gateway.send(text=CYRILLIC * 134)).segments == 2
    for text in ("a" * 307, "€" * 154, CYRILLIC * 135, EMOJI * 68):
        error = await fails(gateway, text=text)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = rpc_details(error)
        assert details["error_info"].reason == "TOO_MANY_SEGMENTS"
        assert [v.field for v in details["bad_request"].field_violations] == ["text"]
    # The refused texts reached neither the provider nor the queue.
    assert len(provider.state.requests_to("/messages")) == 2
    listed = await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest())
    assert len(listed.messages) == 2


async def test_a_file_counts_its_caption(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)

    def file(caption: str) -> gateway_pb2.SendFileRequest:
        request = gateway_pb2.SendFileRequest(
            org_id="org-1",
            to="+15557654321",
            media_url="https://files.example/a.png",
            text=caption,
            options=gateway_pb2.SendOptions(mode=gateway_pb2.SendOptions.QUEUE),
        )
        setattr(request, "from", "+15550001111")
        return request

    bare = await gateway.stub.SendFile(file(""))
    captioned = await gateway.stub.SendFile(file("€" * 81))
    emoji = await gateway.stub.SendFile(file(EMOJI))

    assert (bare.state, bare.encoding, bare.segments) == (gateway_pb2.Message.QUEUED, "GSM-7", 0)
    assert (captioned.encoding, captioned.segments) == ("GSM-7", 2)
    assert (emoji.encoding, emoji.segments) == ("UCS-2", 1)
    record = await message(gateway, captioned.message_id)
    assert (record.encoding, record.segments) == ("GSM-7", 2)
