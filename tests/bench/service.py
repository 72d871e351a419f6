"""The msgbridge service itself, measured beside the baselines in the same run.

``send``: SendMessage over gRPC through the full path — find the installation, claim and record
the message, render the JSON body with Bearer auth, call the fake provider through the outbound
client, map its answer, record the result — into a service running in its own process on a
SQLite file in a temporary directory. Each call goes to another recipient (cycling over 1,000):
messages to one recipient leave one at a time (docs/delivery.md, conversation order), and this
benchmark measures the path, not one conversation's turn-taking.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import GatewayServer, build_server
from server.config import Settings

from ._harness import BenchEnv, Benchmark, Result, measure

__all__ = [
    "SERVICE",
    "bench_number",
    "recipient",
    "running_service",
    "send_messages",
    "send_request",
    "start_service",
]

_RUNNING: list[object] = []

#: ``python -m tests.bench --metrics`` sets it (inherited by the service's child processes): the
#: service counts its metrics and serves them on a port of its own (docs/operations.md).
METRICS_VARIABLE = "MSGBRIDGE_BENCH_METRICS"
#: ``python -m tests.bench --no-exchange-log`` sets it: the service keeps no provider exchanges
#: (on by default, as in the product), to measure their cost against a run with them.
NO_EXCHANGE_LOG_VARIABLE = "MSGBRIDGE_BENCH_NO_EXCHANGE_LOG"


# An MMS model (docs/media.md): listed with the SMS model, it wins a body that has a ``url``
# (the model with the most captures, docs/format.md); its files are fetched without credentials.
_MMS_MODEL = {
    "event_key": "mms",
    "event_type": "mms",
    "request_method": "POST",
    "request_parameters": {
        "id": "$messageid$",
        "from": "$from$",
        "to": "$to$",
        "text": "$content$",
        "url": "$url$",
    },
}


def bench_definition(provider_url: str, mms: bool = False) -> str:
    """The bench integration; with ``mms`` also an MMS model and ``Media`` auth ``none``."""
    definition: dict[str, Any] = {
        "id": "bench",
        "name": "bench",
        "class": "sms",
        "properties": ["API key"],
        "auth": {"type": "Bearer", "token": "$API key$"},
        "API": {
            "SendMessage": {
                "request_method": "POST",
                "request_url": f"{provider_url}/messages",
                "request_content_type": "application/json",
                "request_parameters": {
                    "from": "$from$",
                    "to": "$to$",
                    "extension": "$extension$",
                    "domain": "$domain$",
                    "content": "$content$",
                },
                "response_map": {"data": {"id": "$messageid$"}},
            }
        },
        "Webhook": [
            {
                "event_key": "sms",
                "event_type": "message",
                "request_method": "POST",
                "request_parameters": {
                    "id": "$messageid$",
                    "from": "$from$",
                    "to": "$to$",
                    "text": "$content$",
                },
            }
        ],
    }
    if mms:
        definition["Webhook"].append(_MMS_MODEL)
        definition["Media"] = {"auth": "none"}
    return json.dumps(definition)


def bench_number(index: int) -> str:
    """The installation's ``index``-th number (the first is +15550001111)."""
    return f"+1555000{1111 + index}"


def recipient(index: int) -> str:
    return f"+1555{2_000_000 + index:07d}"


def _limits(per_number: float, per_installation: float) -> gateway_pb2.SendLimits | None:
    """Send limits with a burst of 1 (a steady pace); None when neither rate is set."""
    if not per_number and not per_installation:
        return None
    limits = gateway_pb2.SendLimits()
    for rate, field in (
        (per_number, limits.per_number),
        (per_installation, limits.per_installation),
    ):
        if rate:
            field.CopyFrom(gateway_pb2.Throughput(per_second=rate, burst=1))
    return limits


async def start_service(*args: Any, **kwargs: Any) -> str:
    """(In a child process.) :func:`running_service`'s address."""
    _, address = await running_service(*args, **kwargs)
    return address


async def running_service(
    provider_url: str,
    sidecar: bool = False,
    database_url: str = "",
    secret_key_file: str = "",
    install: bool = True,
    numbers: int = 1,
    per_number: float = 0.0,
    per_installation: float = 0.0,
    mms: bool = False,
    media_fetch: bool = True,
    data_dir: Path | None = None,
) -> tuple[GatewayServer, str]:
    """(In a child process.) The service on a temporary SQLite file (or ``database_url``), with
    the bench integration registered and enabled for org ``bench`` on ``numbers`` numbers from
    +15550001111 (unless ``install`` is false: a second replica of a database that has it), each
    limited to ``per_number`` messages a second and all to ``per_installation`` (0: no limit);
    with ``mms`` the integration has an MMS model, whose files are fetched unless ``media_fetch``
    is false (docs/media.md).
    ``data_dir`` is a temporary one unless given. Returns the server and its gRPC address, and
    with the sidecar ``ADDRESS|http://127.0.0.1:PORT/webhooks/bench/TOKEN``."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=data_dir,
        database_url=database_url,
        secret_key_file=Path(secret_key_file) if secret_key_file else None,
        outbound_allow=("127.0.0.1",),
        sidecar=sidecar,
        media_fetch=media_fetch,
        log_level="WARNING",
        metrics_listen="127.0.0.1:0" if os.environ.get(METRICS_VARIABLE) == "1" else "",
        exchange_log=os.environ.get(NO_EXCHANGE_LOG_VARIABLE) != "1",
    )
    server, port = await build_server(settings)
    await server.start()
    _RUNNING.append(server)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        if install:
            await server.catalog.register(bench_definition(provider_url, mms))
            installation = await stub.EnableIntegration(
                gateway_pb2.EnableIntegrationRequest(
                    org_id="bench",
                    integration_id="bench",
                    properties={"API key": "bench-key"},
                    numbers=[
                        gateway_pb2.NumberAssignment(number=bench_number(i), users=["101"])
                        for i in range(numbers)
                    ],
                    send_limits=_limits(per_number, per_installation),
                )
            )
        else:
            listed = await stub.ListInstallations(gateway_pb2.ListInstallationsRequest())
            installation = listed.installations[0]
    if not sidecar:
        return server, f"127.0.0.1:{port}"
    path = installation.webhook_url.split("/webhooks/", 1)[1]
    return server, f"127.0.0.1:{port}|http://127.0.0.1:{server.http_port}/webhooks/{path}"


def send_request(
    to: str = "+15550002222", sender: str = "+15550001111", *, queue: bool = False
) -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(
        org_id="bench",
        to=to,
        text="Hello from the benchmark — msgbridge",
        extension="101",
        domain="example.org",
    )
    setattr(request, "from", sender)
    if queue:
        request.options.mode = gateway_pb2.SendOptions.QUEUE
    return request


async def send(env: BenchEnv, benchmark: Benchmark) -> Result:
    target = await env.server("msgbridge service", start_service, env.fake_url)
    return await send_messages(benchmark, target)


async def send_messages(benchmark: Benchmark, target: str) -> Result:
    """SendMessage to the service at ``target`` (to 1,000 recipients in turn)."""
    requests = itertools.cycle([send_request(recipient(i)) for i in range(1_000)])
    async with grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        async def call() -> object:
            return await stub.SendMessage(next(requests))

        return await measure(benchmark, call)


SERVICE: list[Benchmark] = [
    Benchmark(name="msgbridge SendMessage (full path)", concurrency=c, run=send) for c in (1, 64)
]
