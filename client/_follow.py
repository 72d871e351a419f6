"""``msgbridge events --follow``: stream events, and outlive a server that stops or restarts.

The stream ends when the server stops (gracefully: its streams close so that subscribers resume
elsewhere) and fails with UNAVAILABLE when it dies or cannot be reached. Either way the command
says so on stderr and reconnects with backoff (0.5 s doubling to 30 s, with jitter), once the
server answers its health check: after the last cursor it printed, so that no event is skipped or
printed twice; a durable consumer resumes after its last acknowledged event, as the server keeps
it. Before the first event it resumes where it started (``--after``, ``--earliest``, or from
then). It gives up — exit 1, with the reason on stderr — when it could not reconnect for
``--give-up-after`` seconds (0: never); any other error (a refused token, a bad filter) exits 1 at
once, as every command does. README, "Five minutes with it".
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2

from msgbridge.v1 import gateway_pb2

from ._client import Client
from ._errors import MsgbridgeError

__all__ = ["DEFAULT_GIVE_UP_AFTER_S", "FollowRequest", "follow"]

DEFAULT_GIVE_UP_AFTER_S = 300.0
_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 30.0
# The codes a stream ends with when the server stopped, died or is out of reach.
_RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


@dataclass(frozen=True, kw_only=True, slots=True)
class FollowRequest:
    """What ``events --follow`` was asked for."""

    org_id: str = ""
    integration_id: str = ""
    types: Sequence[gateway_pb2.Event.Type.ValueType] = ()
    after_cursor: int | None = None
    earliest: bool = False
    consumer: str = ""
    max_batch: int = 0
    give_up_after_s: float = DEFAULT_GIVE_UP_AFTER_S


def _say(text: str) -> None:
    print(f"msgbridge events: {text}", file=sys.stderr, flush=True)


def follow(
    client: Client,
    request: FollowRequest,
    show: Callable[[gateway_pb2.Event], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Stream and ``show`` every event until interrupted; 1 when it gives up reconnecting."""
    last_cursor: int | None = None

    def show_and_keep(event: gateway_pb2.Event) -> None:
        nonlocal last_cursor
        show(event)
        last_cursor = event.cursor

    while True:
        try:
            _stream(client, request, last_cursor, show_and_keep)
            _say("the stream ended (the server is stopping or restarting); reconnecting")
        except MsgbridgeError as exc:
            if exc.code not in _RECONNECT_CODES:
                raise
            _say(f"the connection was lost ({exc.code.name}: {exc.message}); reconnecting")
        if not _reconnect(client, request.give_up_after_s, sleep):
            return 1
        where = f"after cursor {last_cursor}" if last_cursor is not None else "where it started"
        _say(f"reconnected; resuming {where}")


def _stream(
    client: Client,
    request: FollowRequest,
    last_cursor: int | None,
    show: Callable[[gateway_pb2.Event], None],
) -> None:
    """One stream, after ``last_cursor`` when one was shown, until it ends or fails."""
    resume = last_cursor is not None and not request.consumer
    batches = client.stream_event_batches(
        org_id=request.org_id,
        integration_id=request.integration_id,
        types=request.types,
        after_cursor=last_cursor if resume else request.after_cursor,
        earliest=request.earliest and not resume,
        consumer=request.consumer,
        max_batch=request.max_batch,
    )
    try:
        for batch in batches:
            for event in batch.events:
                show(event)
            # Acknowledged once printed: a consumer that is interrupted gets the rest again.
            if request.consumer and batch.events:
                client.ack_events(request.consumer, [event.cursor for event in batch.events])
    finally:
        batches.close()


def _reconnect(client: Client, give_up_after_s: float, sleep: Callable[[float], None]) -> bool:
    """Wait, with backoff, until the server answers SERVING; False once it is time to give up."""
    started = time.monotonic()
    delay = _FIRST_DELAY_S
    while True:
        wait = delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        if give_up_after_s and time.monotonic() - started + wait > give_up_after_s:
            _say(f"gave up: could not reconnect for {give_up_after_s:g} s")
            return False
        sleep(wait)
        delay = min(delay * 2, _MAX_DELAY_S)
        try:
            status = client.check_health().status
        except MsgbridgeError as exc:
            _say(f"still unreachable ({exc.code.name}); retrying")
            continue
        if status == health_pb2.HealthCheckResponse.SERVING:
            return True
        _say("the server is not serving yet; retrying")
