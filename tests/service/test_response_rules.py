"""(ext) response_rules through the real gRPC API (docs/format.md, "response_rules"): what a
caller gets when a 2xx answer is not a success, or a provider's error code names the failure —
the gRPC code, the ErrorInfo reason and metadata, RetryInfo — and the message recorded FAILED."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, definition, rpc_details

RULES = {
    "errors": [
        {"status": [400], "when": {"pointer": "/code", "one_of": [21610]}, "outcome": "opted_out"},
        {"when": {"pointer": "/error/type", "one_of": ["throttled"]}, "outcome": "throttled"},
        # (ext) WhatsApp's closed conversation window; Telegram's wait in the body
        {
            "status": [400],
            "when": {"pointer": "/error/code", "one_of": [131047]},
            "outcome": "outside_window",
        },
        {"status": [429], "outcome": "throttled", "retry_after": "/parameters/retry_after"},
    ],
    "require": [
        {"capture": "messageid", "not": ["", "0"]},
        {"pointer": "/error", "absent": True},
    ],
}


@pytest.fixture
async def ruled(gateway: Gateway, provider: RunningFakeProvider) -> Gateway:
    parameters = {"from": "$from$", "to": "$to$", "content": "$content$", "ref": "$gateway_id$"}
    doc = json.loads(definition(provider.url, parameters=parameters))
    doc["API"]["SendMessage"]["response_rules"] = RULES
    await gateway.register(json.dumps(doc))
    await gateway.enable("acme-sms")
    return gateway


async def _fails(gateway: Gateway, **fields: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.send(**fields)
    return caught.value


async def _failed_message(gateway: Gateway, provider: RunningFakeProvider) -> gateway_pb2.Message:
    """The message the provider was sent, as the gateway recorded it."""
    gateway_id = provider.state.requests[-1].json["ref"]  # a failed send has no reply
    return await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=gateway_id))


async def _rate_limited(gateway: Gateway, key: str) -> tuple[gateway_pb2.SendReply, int]:
    """A send the provider rate limits: its reply (QUEUED) and the seconds its retry waits."""
    reply = await gateway.send(idempotency_key=key)
    assert reply.state == gateway_pb2.Message.QUEUED
    message = await gateway.stub.GetMessage(
        gateway_pb2.GetMessageRequest(message_id=reply.message_id)
    )
    [attempt] = message.attempt_log
    assert attempt.reason == "PROVIDER_RATE_LIMITED"
    wait: int = message.next_attempt_at.ToSeconds() - attempt.ended_at.ToSeconds()
    return reply, wait


async def test_a_success_answer_still_succeeds(
    ruled: Gateway, provider: RunningFakeProvider
) -> None:
    provider.state.script("*", Answer(json={"data": {"id": "SM1"}}))
    reply = await ruled.send()
    assert reply.provider_message_id == "SM1"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"data": {"id": "0"}}, '$messageid$: expected a value other than "", "0", but found "0"'),
        ({"data": {}}, "$messageid$: expected a value other than"),
        ({"data": {"id": "SM1"}, "error": {"code": 9}}, "/error: expected nothing"),
    ],
)
async def test_a_200_that_is_not_a_success_fails_the_send(
    ruled: Gateway, provider: RunningFakeProvider, body: Any, says: str
) -> None:
    provider.state.script("*", Answer(json=body))
    error = await _fails(ruled)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rpc_details(error)["error_info"]
    assert info.reason == "PROVIDER_REFUSED"
    assert info.metadata["provider_status"] == "200"
    assert says in error.details()
    message = await _failed_message(ruled, provider)
    assert message.state == gateway_pb2.Message.FAILED
    assert says in message.error


@pytest.mark.parametrize(
    ("answer", "outcome", "reason", "code"),
    [
        (
            {"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
            "opted_out",
            "RECIPIENT_OPTED_OUT",
            "21610",
        ),
        # (ext) WhatsApp's closed conversation window: only a template reaches the recipient
        (
            {"error": {"message": "(#131047) Re-engagement message", "code": 131047}},
            "outside_window",
            "TEMPLATE_REQUIRED",
            "131047",
        ),
    ],
)
async def test_a_final_outcome(
    ruled: Gateway,
    provider: RunningFakeProvider,
    answer: Any,
    outcome: str,
    reason: str,
    code: str,
) -> None:
    provider.state.script("*", Answer(status=400, json=answer))
    error = await _fails(ruled, idempotency_key="k-final")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rpc_details(error)["error_info"]
    assert info.reason == reason
    assert info.metadata["provider_code"] == code
    assert info.metadata["outcome"] == outcome
    assert info.metadata["provider_status"] == "400"
    message = await _failed_message(ruled, provider)
    assert message.state == gateway_pb2.Message.FAILED
    assert reason in message.error and code in message.error
    # Not retryable: the same key answers the same error without calling the provider again.
    again = await _fails(ruled, idempotency_key="k-final")
    assert rpc_details(again)["error_info"].reason == reason
    assert len(provider.state.requests) == 1


async def test_throttled_inside_a_200_is_retryable(
    ruled: Gateway, provider: RunningFakeProvider
) -> None:
    provider.state.script(
        "*",
        Answer(json={"error": {"type": "throttled"}}, headers=(("Retry-After", "30"),)),
        Answer(json={"data": {"id": "SM2"}}),
    )
    # Nothing was sent: the queue tries again after the Retry-After, which is after the
    # caller's deadline, so the caller hears QUEUED at once (docs/delivery.md, "Retries").
    reply, wait = await _rate_limited(ruled, "k-throttled")
    assert 29 <= wait <= 31
    # A repeat of the key is the same message, still waiting for its retry.
    again = await ruled.send(idempotency_key="k-throttled")
    assert again.message_id == reply.message_id and again.replayed
    assert len(provider.state.requests) == 1


async def test_a_wait_given_in_the_body_is_the_retry_s_wait(
    ruled: Gateway, provider: RunningFakeProvider
) -> None:
    body = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 40",
        "parameters": {"retry_after": 40},
    }
    provider.state.script("*", Answer(status=429, json=body))
    _, wait = await _rate_limited(ruled, "k-telegram-429")
    assert 39 <= wait <= 41
