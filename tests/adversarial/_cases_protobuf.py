"""Bad protobuf: raw request bytes through a channel with no serializer — truncated messages,
wrong wire types, huge length prefixes, invalid UTF-8 in string fields on both the
Gateway and the Ingest services, groups nested past the decoder's limit, oversize messages.

An undecodable request is INVALID_ARGUMENT with no Python class name in the answer; a
request over the server's receive limit is RESOURCE_EXHAUSTED (gRPC's own answer).
"""

from __future__ import annotations

import asyncio

from msgbridge.v1 import ingest_pb2

from ._case import Cases, expect, expect_status
from ._checks import no_class_name
from ._env import ACME_NUMBER, Env, send_request

__all__ = ["CASES"]

cases = Cases("protobuf")
CASES = cases.all

_GATEWAY = "/msgbridge.v1.Gateway/"
_INGEST = "/msgbridge.v1.Ingest/IngestWebhook"
_NOT_UTF8 = b"\xff\xfe\xc0\x80\xed\xa0\x80"  # invalid bytes, an overlong NUL, a surrogate


def _string_field(number: int, value: bytes) -> bytes:
    return bytes([number << 3 | 2, len(value)]) + value


def _raw_case(
    name: str, method: str, payload: bytes, wanted: tuple[str, ...], token: str = "full"
) -> None:
    async def run(env: Env) -> str:
        key = {"full": env.tokens.full, "read": env.tokens.read, "ingest": env.tokens.ingest}[token]
        if method.endswith("/StreamEvents"):
            result = await env.gateway.raw_stream(method, payload, key)
        else:
            result = await env.gateway.raw(method, payload, key)
        status = expect_status(result.code, wanted)
        no_class_name(result)
        return status

    cases.add(name, run)


_INVALID = ("INVALID_ARGUMENT",)

# --- invalid UTF-8 in a string field, method by method -----------------------------------------
for _method, _field, _token in (
    ("ListInstallations", 1, "read"),
    ("GetInstallation", 1, "read"),
    ("GetMessage", 1, "read"),
    ("ListEvents", 1, "read"),
    ("ListUnmatchedWebhooks", 1, "read"),
    ("RegisterIntegration", 1, "full"),
    ("DeleteIntegration", 1, "full"),
    ("EnableIntegration", 1, "full"),
    ("SendMessage", 4, "full"),
    ("SendFile", 4, "full"),
    ("AckEvents", 1, "full"),
    ("ReplayWebhook", 1, "full"),
    ("StreamEvents", 6, "full"),
):
    _raw_case(
        f"invalid-utf8-{_method}",
        _GATEWAY + _method,
        _string_field(_field, _NOT_UTF8),
        _INVALID,
        _token,
    )

_raw_case(
    "invalid-utf8-IngestWebhook-method", _INGEST, _string_field(1, _NOT_UTF8), _INVALID, "ingest"
)
_raw_case(
    "invalid-utf8-IngestWebhook-header",
    _INGEST,
    _string_field(4, _string_field(1, _NOT_UTF8)),
    _INVALID,
    "ingest",
)
_raw_case(
    "invalid-utf8-SendMessage-metadata-key",
    _GATEWAY + "SendMessage",
    _string_field(9, _string_field(1, _NOT_UTF8) + _string_field(2, b"v")),
    _INVALID,
)

# --- malformed messages ------------------------------------------------------------------------
_SEND = send_request("acme", ACME_NUMBER, "hello").SerializeToString()
_raw_case("truncated-SendMessage", _GATEWAY + "SendMessage", _SEND[:-3], _INVALID)
_raw_case(
    "truncated-IngestWebhook",
    _INGEST,
    ingest_pb2.WebhookDelivery(
        method="POST", path="/webhooks/demo", body=b"{}"
    ).SerializeToString()[:-1],
    _INVALID,
    "ingest",
)
_raw_case(
    "length-prefix-2gib",
    _GATEWAY + "GetIntegration",
    b"\x0a\xff\xff\xff\xff\x07abc",
    _INVALID,
    "read",
)
_raw_case(
    "length-prefix-overflows-varint",
    _GATEWAY + "GetIntegration",
    b"\x0a" + b"\xff" * 10 + b"\x01",
    _INVALID,
    "read",
)
_raw_case("field-number-zero", _GATEWAY + "GetIntegration", b"\x02\x01a", _INVALID, "read")
_raw_case("invalid-wire-type-7", _GATEWAY + "GetIntegration", b"\x0f\x01", _INVALID, "read")
_raw_case("unterminated-group", _GATEWAY + "GetIntegration", b"\x0b" * 10, _INVALID, "read")
_raw_case(
    "groups-nested-100000-deep",
    _GATEWAY + "ListIntegrations",
    b"\x1b" * 100_000 + b"\x1c" * 100_000,
    _INVALID,
    "read",
)
# Field 1 of ListInstallations and ListEvents (org_id) set to "alive", whose replies stay small
# whatever else a case leaves in the store (a reply's size is judged by other cases).
_ALIVE = _string_field(1, b"alive")

# A known field with another wire type is kept as an unknown field (the message decodes): the
# request then names nothing, which is refused or not found — never an internal error.
_raw_case(
    "wrong-wire-type-varint-for-string",
    _GATEWAY + "GetIntegration",
    b"\x08\x01",
    ("INVALID_ARGUMENT", "NOT_FOUND"),
    "read",
)
_raw_case(
    "wrong-wire-type-string-for-varint",
    _GATEWAY + "ListInstallations",
    _ALIVE + b"\x1a\x03abc",
    ("OK", "INVALID_ARGUMENT"),
    "read",
)
_raw_case(
    "negative-page-size",
    _GATEWAY + "ListInstallations",
    _ALIVE + b"\x18" + b"\xff" * 9 + b"\x01",
    ("OK", "INVALID_ARGUMENT"),
    "read",
)
_raw_case(
    "enum-value-out-of-range",
    _GATEWAY + "ListEvents",
    _ALIVE + b"\x18\xe7\x07",
    ("OK", "INVALID_ARGUMENT"),
    "read",
)
_raw_case(
    "empty-SendMessage",
    _GATEWAY + "SendMessage",
    b"",
    ("INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED"),
)
_raw_case("unknown-method", _GATEWAY + "NoSuchMethod", b"", ("UNIMPLEMENTED",))


def _definition_bytes(size: int) -> bytes:
    """A RegisterIntegrationRequest whose definition_json is ``size`` bytes of a JSON string."""
    text = b'"' + b"x" * (size - 2) + b'"'
    length = size
    prefix = bytearray(b"\x0a")
    while True:  # the length as a varint
        byte, length = length & 0x7F, length >> 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(prefix) + text


# The server takes requests up to its webhook body limit or a definition's 1 MiB (docs/format.md,
# Limits), plus 1 MiB: 2 MiB here.
_raw_case(
    "oversize-5mib-definition",
    _GATEWAY + "RegisterIntegration",
    _definition_bytes(5 << 20),
    ("RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"),
)
_raw_case(
    "oversize-9mib-message",
    _GATEWAY + "RegisterIntegration",
    _definition_bytes(9 << 20),
    ("RESOURCE_EXHAUSTED",),
)


def _parallel_large_case(name: str, size: int) -> None:
    async def run(env: Env) -> str:
        payload = _definition_bytes(size)
        results = await asyncio.gather(
            *(
                env.gateway.raw(_GATEWAY + "RegisterIntegration", payload, env.tokens.full)
                for _ in range(8)
            )
        )
        codes = {result.code for result in results}
        expect(codes <= {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}, f"codes {sorted(codes)}")
        return "8x" + "/".join(sorted(codes))

    cases.add(name, run)


_parallel_large_case("8-parallel-8mib-definitions", (8 << 20) - 64)
# Just under what the server receives: each is read whole, then refused for its size.
_parallel_large_case("8-parallel-2mib-definitions", (2 << 20) - 4096)
