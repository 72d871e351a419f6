"""The answer a provider gets for a stored webhook (docs/format.md, "Answers"), over real sockets:
the same through the in-process sidecar, through a separate one forwarding over gRPC, and through
a ``msgbridge sidecar`` process, and never in place of a failure the core decides."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider
from server.sidecar import GrpcIngestForwarder, SidecarServer, build_sidecar_app

from .conftest import Gateway, GatewayFactory, definition


def _model(kind: str, answer: dict[str, Any] | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "event_key": kind,
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "kind": "$event_key$",
            "id": "$messageid$",
            "from": "$from$",
            "to": "$to$",
            "text": "$content$",
        },
    }
    if answer is not None:
        model["answer"] = answer
    return model


JSON_ACK = {"status": 202, "content_type": "application/json", "body": '{"received": true}'}
TWIML = {"content_type": "text/xml", "body": "<Response/>"}
PLAIN_ACK = {"content_type": "text/plain", "body": "ACK ✓"}


def _definition(provider_url: str) -> str:
    doc = json.loads(definition(provider_url))
    doc["Webhook"] = [_model("acked", JSON_ACK), _model("plain")]
    doc["WebhookAnswer"] = {"matched": TWIML, "unmatched": PLAIN_ACK}
    return json.dumps(doc)


def _payload(kind: str, n: int) -> dict[str, str]:
    return {"kind": kind, "id": f"{kind}-{n}", "from": "+15557654321", "to": "+15550001111",
            "text": f"#{n}"}  # fmt: skip


Answered = tuple[int, str, bytes]
Expected = tuple[int, str, bytes | None]  # None: not the definition's answer


async def _post(http: aiohttp.ClientSession, url: str, body: bytes) -> Answered:
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


def _cases(n: int) -> list[tuple[bytes, Expected]]:
    """Each body (numbered ``n`` so that no event is a duplicate) and the answer it must get."""
    return [
        # the matched model's own answer
        (
            json.dumps(_payload("acked", n)).encode(),
            (202, "application/json", b'{"received": true}'),
        ),
        # a model without one: the definition's matched answer
        (json.dumps(_payload("plain", n)).encode(), (200, "text/xml", b"<Response/>")),
        # a batch: the first event whose model has an answer gives it
        (
            json.dumps([_payload("plain", n + 1), _payload("acked", n + 1)]).encode(),
            (202, "application/json", b'{"received": true}'),
        ),
        # nothing matched: the definition's unmatched answer
        (json.dumps({"kind": "other"}).encode(), (200, "text/plain", "ACK ✓".encode())),
        # a body the core cannot parse: its own 400, never the definition's answer
        (b"{not json", (400, "text/plain; charset=utf-8", None)),
    ]


async def _check(http: aiohttp.ClientSession, url: str, n: int) -> None:
    for body, (status, content_type, wanted) in _cases(n):
        got = await _post(http, url, body)
        assert got[:2] == (status, content_type), body
        if wanted is not None:
            assert got[2] == wanted, body
        else:
            assert got[2] != b"<Response/>" and got[2] != "ACK ✓".encode()


async def test_the_same_answer_in_process_and_through_a_separate_sidecar(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    core: Gateway = await start_gateway(sidecar=True)
    await core.register(_definition(provider.url))
    installation = await core.enable("acme-sms", numbers={"+15550001111": ["101"]})
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    forwarder = GrpcIngestForwarder(f"127.0.0.1:{core.port}", timeout_s=5.0)
    app = build_sidecar_app(
        forwarder, public_url="http://127.0.0.1:0", max_body=1 << 20, request_timeout_s=10
    )
    sidecar = SidecarServer(app, "127.0.0.1", 0)
    await sidecar.start()
    try:
        async with aiohttp.ClientSession() as http:
            await _check(http, f"http://127.0.0.1:{core.server.http_port}{path}", 1)
            await _check(http, f"http://127.0.0.1:{sidecar.port}{path}", 10)
    finally:
        await forwarder.aclose()
        await sidecar.aclose()
    listed = await core.stub.ListEvents(gateway_pb2.ListEventsRequest(page_size=100))
    # each path stored its four events: the answer was sent after the request was stored
    assert len(listed.events) == 8


# The command group as client/cli.py runs it (as tests/sidecar/test_sidecar_process.py does).
_SIDECAR_MAIN = (
    "import argparse, sys\n"
    "from client._sidecar_cli import add_parsers\n"
    "parser = argparse.ArgumentParser(prog='msgbridge')\n"
    "add_parsers(parser.add_subparsers())\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.handler(args))\n"
)


async def _serving_port(stderr: asyncio.StreamReader) -> int:
    async with asyncio.timeout(30):
        while line := await stderr.readline():
            entry = json.loads(line.decode())
            if entry["msg"] == "webhook sidecar serving":
                return int(entry["port"])
    raise AssertionError("the sidecar never served")


@pytest.mark.e2e
async def test_the_same_answer_from_a_sidecar_process(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    core: Gateway = await start_gateway()
    await core.register(_definition(provider.url))
    installation = await core.enable("acme-sms", numbers={"+15550001111": ["101"]})
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SIDECAR_MAIN,
        "sidecar",
        "--core",
        f"127.0.0.1:{core.port}",
        "--http-listen",
        "127.0.0.1:0",
        "--public-url",
        "http://127.0.0.1:0",
        env={"PATH": ""},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        port = await _serving_port(process.stderr)
        async with aiohttp.ClientSession() as http:
            await _check(http, f"http://127.0.0.1:{port}{path}", 20)
    finally:
        process.kill()
        await process.wait()
