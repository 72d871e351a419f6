"""server.api._rpc alone: what a unary or a streaming handler's failure becomes for the caller."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from server.api._rpc import rpc, rpc_stream
from server.errors import InvalidRequest
from server.store import StoreError


class Aborted(Exception):
    """What the fake context's abort raises (grpc's AbortError cannot be made outside grpc)."""


class Context:
    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted


def reason(status: grpc.Status) -> str:
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    info = error_details_pb2.ErrorInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(info)
    reason: str = info.reason
    return reason


class Servicer:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.closed = False

    @rpc
    async def Unary(self, request: str, context: Any) -> str:
        if self.error is not None:
            raise self.error
        return request.upper()

    @rpc_stream
    async def Stream(self, request: str, context: Any) -> AsyncGenerator[str, None]:
        try:
            for part in request:
                yield part
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


async def test_a_handler_that_succeeds_is_answered_as_it_answers() -> None:
    context = Context()
    assert await Servicer(None).Unary("a", context) == "A"
    assert [part async for part in Servicer(None).Stream("ab", context)] == ["a", "b"]
    assert context.status is None


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_gateway_error_is_its_status_with_details(streaming: bool) -> None:
    context = Context()
    servicer = Servicer(InvalidRequest("bad", violations=[("field", "why")]))
    with pytest.raises(Aborted):
        if streaming:
            assert [p async for p in servicer.Stream("ab", context)] == []  # pragma: no cover
        else:
            await servicer.Unary("a", context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.status.details == "bad"
    assert reason(context.status) == "INVALID_REQUEST"


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_store_failure_is_unavailable(streaming: bool) -> None:
    context = Context()
    servicer = Servicer(StoreError("disk I/O error"))
    with pytest.raises(Aborted):
        if streaming:
            [p async for p in servicer.Stream("ab", context)]
        else:
            await servicer.Unary("a", context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.UNAVAILABLE
    assert "disk" not in context.status.details
    assert reason(context.status) == "STORE_UNAVAILABLE"


@pytest.mark.parametrize("streaming", [False, True])
async def test_anything_else_is_internal_with_an_incident_the_log_shares(
    streaming: bool, caplog: pytest.LogCaptureFixture
) -> None:
    context = Context()
    servicer = Servicer(KeyError("secret-ish detail"))
    with caplog.at_level(logging.ERROR, logger="server.api._rpc"), pytest.raises(Aborted):
        if streaming:
            [p async for p in servicer.Stream("ab", context)]
        else:
            await servicer.Unary("a", context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.INTERNAL
    assert "secret-ish" not in context.status.details
    (record,) = caplog.records
    incident = record.__dict__["incident"]
    assert context.status.details == f"internal error (incident {incident})"
    assert record.__dict__["rpc"] == ("Stream" if streaming else "Unary")
    assert record.exc_info is not None  # the traceback: in the log only


async def test_a_stream_fails_after_what_it_sent_and_is_closed_when_the_call_ends() -> None:
    context = Context()
    failing = Servicer(InvalidRequest("late"))
    sent: list[str] = []
    with pytest.raises(Aborted):
        async for part in failing.Stream("ab", context):
            sent.append(part)
    assert sent == ["a", "b"] and failing.closed

    # The caller goes away after the first response: the handler's generator is closed with it.
    left, context = Servicer(None), Context()
    responses = left.Stream("abc", context)
    assert await anext(responses) == "a"
    await responses.aclose()
    assert left.closed and context.status is None
