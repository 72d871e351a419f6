"""Hostile provider answers to SendMessage: huge, slow, endless, echoing the secret, redirecting
to addresses the outbound policy refuses, invalid JSON, a gzip bomb, XML bombs.

Each send must end within the provider timeout (2 s) and the send deadline (8 s) with an answer
that is not an internal error, carry no secret, and make no connection to the trap on 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import uuid

from msgbridge.v1 import gateway_pb2

from ._case import Cases, expect, expect_status
from ._checks import message_id_to, no_class_name, send
from ._env import HOSTILE_NUMBER, Env

__all__ = ["CASES"]

cases = Cases("provider")
CASES = cases.all

# A provider's answer decides OK (a 2xx whose body means nothing still sent the message) or a
# provider error; a hostile answer must never be UNKNOWN or INTERNAL.
_ANSWERED = (
    "OK",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
)
_FAILED = tuple(code for code in _ANSWERED if code != "OK")
# The send deadline is 8 s; past this the server did not enforce its own timeouts.
_LONGEST_S = 12.0


def _send_case(name: str, behaviour: str, wanted: tuple[str, ...]) -> None:
    async def run(env: Env) -> str:
        to = f"+1557{uuid.uuid4().int % 10**7:07d}"
        trapped = env.hostile.trap_connections
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await send(env, HOSTILE_NUMBER, behaviour, to=to)
        took = loop.time() - started
        expect(took < _LONGEST_S, f"the send took {took:.1f} s")
        no_class_name(result)
        expect(env.secret not in result.text(), "the secret is in the answer")
        expect(env.hostile.trap_connections == trapped, "a connection reached 127.0.0.2")
        message = await env.gateway.call(
            "GetMessage",
            gateway_pb2.GetMessageRequest(message_id=message_id_to(env, to)),
            env.tokens.read,
        )
        expect(env.secret not in message.text(), "the secret is in GetMessage's reply")
        return expect_status(result.code, wanted)

    cases.add(name, run)


_send_case("ok-baseline", "ok", ("OK",))
_send_case("huge-256mib-body", "huge", _ANSWERED)
_send_case("declares-8gib-sends-64mib", "huge-declared", _ANSWERED)
_send_case("endless-chunked-body", "endless", _ANSWERED)
_send_case("slow-trickled-body", "slow-body", _FAILED)
_send_case("headers-past-the-timeout", "slow-headers", _FAILED)
_send_case("invalid-json", "invalid-json", _ANSWERED)
_send_case("100000-deep-json", "deep-json", _ANSWERED)
_send_case("nan-and-huge-numbers", "nan-json", _ANSWERED)
_send_case("gzip-bomb-1gib", "gzip-bomb", _ANSWERED)
# XML answers are read into the response map's tree (docs/format.md, "XML bodies")
_send_case("xml-billion-laughs", "xml-bomb", _ANSWERED)
_send_case("xml-1mib-of-elements", "xml-megabyte", _ANSWERED)
for _status in (400, 401, 422, 500):
    _send_case(f"echoes-secret-{_status}", f"echo-secret-{_status}", _FAILED)
for _target in ("trap-302", "trap-307", "decimal", "metadata", "ipv6-loopback"):
    _send_case(f"redirect-{_target}", f"redirect-{_target}", _FAILED)


@cases.case("20-parallel-slow-providers")
async def _parallel_slow(env: Env) -> str:
    results = await asyncio.gather(
        *(send(env, HOSTILE_NUMBER, "slow-headers", to=f"+1558{i:07d}") for i in range(20))
    )
    codes = {result.code for result in results}
    expect(codes <= set(_FAILED), f"codes {sorted(codes)}")
    return "20x" + "/".join(sorted(codes))
