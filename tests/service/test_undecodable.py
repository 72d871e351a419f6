"""Requests that are not valid protobuf, sent as raw bytes over a real channel: every method of
both services answers INVALID_ARGUMENT with a plain message, and nothing is logged as an error."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2

from msgbridge.v1 import gateway_pb2, ingest_pb2
from server.security.api_access import hash_token

from .conftest import Gateway, GatewayFactory, rpc_details

TIMEOUT = 10.0

METHODS: list[MethodDescriptor] = [
    *gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].methods,
    *ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].methods,
]


def invalid_utf8(message: Descriptor) -> bytes:
    """A message of type ``message`` whose first string field holds bytes that are not UTF-8."""
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            value = b"\xff\xfeorg"
            return bytes([field.number << 3 | 2, len(value)]) + value
    for field in message.fields:  # a oneof of messages (an upload's start): the first's string
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            inner = invalid_utf8(field.message_type)
            return bytes([field.number << 3 | 2, len(inner)]) + inner
    raise AssertionError(f"{message.full_name} has no string field")


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def call_raw(channel: grpc.aio.Channel, method: MethodDescriptor, data: bytes) -> None:
    """Call ``method`` with ``data`` as the serialized request (identity serializer); a
    client-streaming method with it as its one request."""
    if method.client_streaming:

        async def one() -> AsyncIterator[bytes]:
            yield data

        await channel.stream_unary(path(method))(one(), timeout=TIMEOUT)
    elif method.server_streaming:
        stream = channel.unary_stream(path(method))(data, timeout=TIMEOUT)
        async for _ in stream:
            pass
    else:
        await channel.unary_unary(path(method))(data, timeout=TIMEOUT)


def test_every_method_takes_a_request_with_a_string_field() -> None:
    # So that the test below sends every method invalid UTF-8, not some other corruption.
    for method in METHODS:
        assert invalid_utf8(method.input_type)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_invalid_utf8_is_invalid_argument_without_a_traceback(
    gateway: Gateway, method: MethodDescriptor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call_raw(gateway.channel, method, invalid_utf8(method.input_type))
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = error.details() or ""
    assert "could not be decoded" in details
    for leak in ("DecodeError", "Error", "Exception", "class", "Traceback"):
        assert leak not in details
    info = rpc_details(error)["error_info"]
    assert (info.domain, info.reason) == ("msgbridge", "REQUEST_UNDECODABLE")
    assert info.metadata["method"] == path(method)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == []


async def test_with_tokens_the_token_is_checked_before_the_request_is_decoded(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    tokens = tmp_path / "api-tokens"
    tokens.write_text(f"full sha256:{hash_token(token).hex()}\n", encoding="utf-8")
    secured: Gateway = await start_gateway(api_tokens_file=tokens)
    get_message = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].methods_by_name["GetMessage"]
    data = invalid_utf8(get_message.input_type)
    call = secured.channel.unary_unary(path(get_message))
    for metadata, code in (
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {token}"),), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(data, metadata=metadata, timeout=TIMEOUT)
        assert caught.value.code() == code


async def test_the_health_service_refuses_an_undecodable_request_as_well(gateway: Gateway) -> None:
    check = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call_raw(gateway.channel, check, invalid_utf8(check.input_type))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
