"""The gRPC server receives requests only as large as it needs: the largest webhook delivery its
``webhook_max_body`` allows, or definition, plus room for headers. Every request is held whole
before it can be refused, so a larger limit is memory an unauthenticated caller may take."""

from __future__ import annotations

import json

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.app import max_request_bytes
from server.engine import MAX_DEFINITION_BYTES

from .conftest import GatewayFactory


def register_request(size: int) -> bytes:
    """A serialized RegisterIntegrationRequest of about ``size`` bytes (a long JSON string)."""
    return gateway_pb2.RegisterIntegrationRequest(
        definition_json=json.dumps("x" * size)
    ).SerializeToString()


async def register_raw(channel: grpc.aio.Channel, data: bytes) -> grpc.StatusCode:
    call = channel.unary_unary("/msgbridge.v1.Gateway/RegisterIntegration")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(data, timeout=30)
    if caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT:
        assert "the definition is larger than 1024 KiB" in (caught.value.details() or "")
    return caught.value.code()


async def test_a_request_over_the_limit_is_refused_whole(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()
    limit = max_request_bytes(gateway.server.settings)
    assert limit == MAX_DEFINITION_BYTES + (1 << 20)  # 2 MiB with the default 1 MiB body
    code = await register_raw(gateway.channel, register_request(limit + 1024))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    # Under the limit, the request reaches the service, which refuses the definition's size.
    code = await register_raw(gateway.channel, register_request(limit - 4096))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_limit_follows_the_webhook_body_limit(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(webhook_max_body=3 << 20)
    assert max_request_bytes(gateway.server.settings) == 4 << 20
    code = await register_raw(gateway.channel, register_request(3 << 20))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_definition_just_over_its_limit_is_refused_alike_whichever_check_sees_it(
    start_gateway: GatewayFactory,
) -> None:
    # Over the limit by a little (the definition's own check) and by a lot (the request's size,
    # checked before its text is read): the same refusal.
    gateway = await start_gateway()
    for size in (MAX_DEFINITION_BYTES + 1, MAX_DEFINITION_BYTES + 100_000):
        code = await register_raw(gateway.channel, register_request(size))
        assert code is grpc.StatusCode.INVALID_ARGUMENT
