"""The retry rule over real sockets (docs/delivery.md, "Retries"; issue 16): one test per kind of
failure — what is retried (nothing can have been sent), what fails at once, what fails
OUTCOME_UNKNOWN — each attempt recorded on the message, and the provider's `Retry-After`
honoured in the recorded retry time."""

from __future__ import annotations

import socket
from datetime import timedelta

import grpc

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider, start_fake_provider

from ._delivery import fails, fast_gateway, message, queued_send, until_state
from .conftest import GatewayFactory, rpc_details

QUEUED = gateway_pb2.Message.QUEUED


def _attempts(record: gateway_pb2.Message) -> list[tuple[int, str]]:
    return [(a.provider_status, a.reason) for a in record.attempt_log]


def _delay(attempt: gateway_pb2.MessageAttempt) -> timedelta:
    """How long after an attempt ended its retry was scheduled (recorded times, not a clock)."""
    return attempt.retry_at.ToDatetime() - attempt.ended_at.ToDatetime()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_connection_refused_is_retried_until_the_provider_listens(
    start_gateway: GatewayFactory,
) -> None:
    port = _free_port()
    gateway = await fast_gateway(start_gateway, f"http://127.0.0.1:{port}", send_max_attempts=1000)
    reply = await queued_send(gateway)

    record = await until_state(gateway, reply.message_id, [QUEUED], attempts=2)
    assert {a.reason for a in record.attempt_log} == {"PROVIDER_UNREACHABLE"}
    assert {a.provider_status for a in record.attempt_log} == {0}
    assert all(a.HasField("retry_at") for a in record.attempt_log)

    provider = await start_fake_provider(port=port)
    try:
        sent = await until_state(gateway, reply.message_id)
        assert sent.state == gateway_pb2.Message.SENT
        assert sent.attempt_log[-1].reason == "" and sent.attempt_log[-1].provider_status == 200
        assert sent.attempts == len(sent.attempt_log) >= 3
        (request,) = provider.state.requests_to("/messages")
        assert request.json["ref"] == reply.message_id
    finally:
        await provider.aclose()


async def test_429_is_retried_after_its_retry_after(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script(
        "/messages", Answer(status=429, headers=(("Retry-After", "1"),)), Answer()
    )
    reply = await queued_send(gateway)
    await provider.state.wait_for_requests(1, path="/messages")

    waiting = await until_state(gateway, reply.message_id, [QUEUED], attempts=1)
    (first,) = waiting.attempt_log
    assert (first.provider_status, first.reason) == (429, "PROVIDER_RATE_LIMITED")
    # Retry-After: 1, not the 0.05 s backoff of the settings.
    assert _delay(first) >= timedelta(seconds=0.99)
    assert waiting.next_attempt_at == first.retry_at

    sent = await until_state(gateway, reply.message_id)
    assert sent.state == gateway_pb2.Message.SENT
    assert _attempts(sent) == [(429, "PROVIDER_RATE_LIMITED"), (200, "")]
    assert sent.attempts == 2
    assert len(provider.state.requests_to("/messages")) == 2
    assert sent.attempt_log[1].started_at.ToDatetime() >= first.retry_at.ToDatetime()


async def test_503_is_retried_with_a_growing_backoff(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script("/messages", Answer(status=503), Answer(status=503), Answer())

    reply = await gateway.send()  # the caller waits: the retries come well within its deadline

    assert reply.state == gateway_pb2.Message.SENT and reply.attempts == 3
    record = await message(gateway, reply.message_id)
    assert _attempts(record) == [
        (503, "PROVIDER_UNAVAILABLE"),
        (503, "PROVIDER_UNAVAILABLE"),
        (200, ""),
    ]
    # send_retry_initial_s 0.05, doubling, with equal jitter: [0.025, 0.05] then [0.05, 0.1].
    first, second = (_delay(a).total_seconds() for a in record.attempt_log[:2])
    assert 0.025 - 1e-5 <= first <= 0.05 + 1e-5  # timestamps are kept to the microsecond
    assert 0.05 - 1e-5 <= second <= 0.1 + 1e-5
    assert not record.attempt_log[2].HasField("retry_at")
    assert len(provider.state.requests_to("/messages")) == 3


async def test_an_answer_the_definition_marks_unavailable_is_retried(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(
        start_gateway, provider.url, errors=[{"status": [502], "outcome": "unavailable"}]
    )
    provider.state.script("/messages", Answer(status=502, json={"error": "upstream"}), Answer())

    reply = await gateway.send()

    assert reply.state == gateway_pb2.Message.SENT and reply.attempts == 2
    record = await message(gateway, reply.message_id)
    assert _attempts(record) == [(502, "PROVIDER_UNAVAILABLE"), (200, "")]
    assert len(provider.state.requests_to("/messages")) == 2


async def test_an_undeclared_500_fails_at_once(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    provider.state.script("/messages", Answer(status=500, json={"error": "boom"}), Answer())

    error = await fails(gateway)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    message_id = provider.state.requests_to("/messages")[0].json["ref"]
    record = await message(gateway, message_id)
    assert record.state == gateway_pb2.Message.FAILED
    assert _attempts(record) == [(500, "PROVIDER_UNAVAILABLE")]
    assert not record.attempt_log[0].HasField("retry_at")
    assert not record.HasField("next_attempt_at")
    assert len(provider.state.requests_to("/messages")) == 1


async def test_a_timeout_fails_outcome_unknown_and_is_not_sent_again(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url, provider_timeout_s=0.3)
    provider.state.script("/messages", Answer(delay_s=1.0), Answer())

    error = await fails(gateway)

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert rpc_details(error)["error_info"].reason == "OUTCOME_UNKNOWN"
    message_id = provider.state.requests_to("/messages")[0].json["ref"]
    record = await message(gateway, message_id)
    assert record.state == gateway_pb2.Message.FAILED
    assert record.error.startswith("OUTCOME_UNKNOWN: the provider may have sent the message")
    (attempt,) = record.attempt_log
    assert (attempt.provider_status, attempt.reason) == (0, "PROVIDER_TIMEOUT")
    assert not attempt.HasField("retry_at")
    assert len(provider.state.requests_to("/messages")) == 1


async def test_a_timeout_is_retried_when_the_provider_deduplicates(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(
        start_gateway, provider.url, deduplicates=True, provider_timeout_s=0.3
    )
    provider.state.script("/messages", Answer(delay_s=1.0), Answer())

    reply = await gateway.send()

    assert reply.state == gateway_pb2.Message.SENT and reply.attempts == 2
    record = await message(gateway, reply.message_id)
    assert [a.provider_status for a in record.attempt_log] == [0, 200]
    assert record.attempt_log[0].HasField("retry_at")
    # The same $gateway_id$ in both: the provider recognises the repeat.
    refs = [r.json["ref"] for r in provider.state.requests_to("/messages")]
    assert refs == [reply.message_id, reply.message_id]


async def test_max_attempts_exhausted_fails_with_the_last_error(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url, send_max_attempts=3)
    provider.state.script(
        "/messages",
        Answer(status=503),
        Answer(status=429),
        Answer(status=503, json={"error": "the last one"}),
    )
    reply = await queued_send(gateway)

    record = await until_state(gateway, reply.message_id)

    assert record.state == gateway_pb2.Message.FAILED
    assert record.attempts == 3
    assert _attempts(record) == [
        (503, "PROVIDER_UNAVAILABLE"),
        (429, "PROVIDER_RATE_LIMITED"),
        (503, "PROVIDER_UNAVAILABLE"),
    ]
    assert [a.number for a in record.attempt_log] == [1, 2, 3]
    assert not record.attempt_log[-1].HasField("retry_at")
    last = record.attempt_log[-1]
    assert record.error == f"{last.reason}: {last.error}"  # the last error, led by its reason
    assert record.provider_status == 503
    assert len(provider.state.requests_to("/messages")) == 3


async def test_deduplicated_timeouts_that_exhaust_the_attempts_fail_outcome_unknown(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(
        start_gateway,
        provider.url,
        deduplicates=True,
        provider_timeout_s=0.2,
        send_max_attempts=2,
    )
    provider.state.script("/messages", Answer(delay_s=0.6))

    error = await fails(gateway, idempotency_key="k")

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert rpc_details(error)["error_info"].reason == "OUTCOME_UNKNOWN"
    message_id = provider.state.requests_to("/messages")[0].json["ref"]
    record = await message(gateway, message_id)
    assert record.state == gateway_pb2.Message.FAILED and record.attempts == 2
    assert record.error.startswith("OUTCOME_UNKNOWN: ")
    # The key's answer is that outcome: a repeat is not sent again.
    again = await fails(gateway, idempotency_key="k")
    assert rpc_details(again)["error_info"].reason == "OUTCOME_UNKNOWN"
    assert len(provider.state.requests_to("/messages")) == 2


async def test_a_repeat_of_a_key_whose_retries_ran_out_queues_the_message_again(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url, send_max_attempts=2)
    provider.state.script("/messages", Answer(status=503), Answer(status=503), Answer())
    queue = gateway_pb2.SendOptions(mode=gateway_pb2.SendOptions.QUEUE)
    first = await gateway.send(idempotency_key="k", options=queue)
    assert (await until_state(gateway, first.message_id)).state == gateway_pb2.Message.FAILED

    # Nothing was sent, so the key was released: its repeat sends the same message again.
    again = await gateway.send(idempotency_key="k", options=queue)

    assert again.message_id == first.message_id and again.replayed
    record = await until_state(gateway, first.message_id, [gateway_pb2.Message.SENT])
    assert [a.provider_status for a in record.attempt_log] == [503, 503, 200]
    listed = await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest())
    assert [m.message_id for m in listed.messages] == [first.message_id]


async def test_a_retry_later_than_the_maximum_age_fails_with_the_last_error(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url, send_max_age_s=0.5)
    provider.state.script("/messages", Answer(status=429, headers=(("Retry-After", "5"),)))

    error = await fails(gateway)

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_details(error)["error_info"].reason == "PROVIDER_RATE_LIMITED"
    message_id = provider.state.requests_to("/messages")[0].json["ref"]
    record = await message(gateway, message_id)
    assert record.state == gateway_pb2.Message.FAILED
    assert _attempts(record) == [(429, "PROVIDER_RATE_LIMITED")]
    assert not record.attempt_log[0].HasField("retry_at")
    assert len(provider.state.requests_to("/messages")) == 1
