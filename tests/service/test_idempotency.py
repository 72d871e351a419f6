"""Idempotency keys: one provider call per key, across concurrency and restarts."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition, rpc_details, stop


async def test_fifty_concurrent_calls_with_one_key_make_one_provider_request(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    # A slow provider keeps the first call in flight while the other 49 arrive.
    provider.state.script("/messages", Answer(delay_s=0.2))
    replies = await asyncio.gather(
        *(gateway.send(idempotency_key="order-7", text="once") for _ in range(50))
    )
    assert len(provider.state.requests) == 1
    first = replies[0]
    for reply in replies:
        assert reply.message_id == first.message_id
        assert reply.provider_message_id == provider.state.requests[0].answer_id
        assert reply.provider_status == first.provider_status
    assert sum(not r.replayed for r in replies) == 1


async def test_key_holds_across_a_restart(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    first = await start_gateway()
    await first.register(definition(provider.url))
    await first.enable("acme-sms")
    reply = await first.send(idempotency_key="k-1", text="hello")
    await stop(first)

    second = await start_gateway()
    again = await second.send(idempotency_key="k-1", text="hello")
    assert len(provider.state.requests) == 1
    assert again.message_id == reply.message_id
    assert again.provider_message_id == reply.provider_message_id
    assert again.replayed


async def test_same_key_with_other_parameters_is_invalid_argument(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    await gateway.send(idempotency_key="k-2", text="one")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.send(idempotency_key="k-2", text="two")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_details(caught.value)
    assert details["error_info"].reason == "IDEMPOTENCY_KEY_REUSED"
    assert [v.field for v in details["bad_request"].field_violations] == ["idempotency_key"]
    assert len(provider.state.requests) == 1


async def test_a_stored_refusal_is_returned_again_without_calling(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    provider.state.script("/messages", Answer(status=400, json={"error": "bad to"}), Answer())
    codes = []
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.send(idempotency_key="k-3")
        codes.append(caught.value.code())
        assert rpc_details(caught.value)["error_info"].reason == "PROVIDER_REJECTED"
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 2
    assert len(provider.state.requests) == 1


async def test_a_failure_that_sent_nothing_releases_the_key(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    # A 500 is not retried by the queue (the provider may have sent the message), but it is
    # an answer that nothing was sent, so the key is released for the caller's retry.
    provider.state.script("/messages", Answer(status=500, text="busy"), Answer())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.send(idempotency_key="k-4")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    reply = await gateway.send(idempotency_key="k-4")
    assert reply.provider_status == 200
    assert len(provider.state.requests) == 2
    again = await gateway.send(idempotency_key="k-4")
    assert again.message_id == reply.message_id
    assert len(provider.state.requests) == 2


async def test_keys_are_per_organisation(gateway: Gateway, provider: RunningFakeProvider) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms", org="org-1", numbers={"+15550001111": []})
    await gateway.enable("acme-sms", org="org-2", numbers={"+15550002222": []})
    a = await gateway.send(org="org-1", idempotency_key="same")
    b = await gateway.send(org="org-2", idempotency_key="same", **{"from": "+15550002222"})
    assert a.message_id != b.message_id
    assert len(provider.state.requests) == 2
