"""The msgbridge service itself, measured beside the baselines in the same run.

``send``: SendMessage over gRPC through the full path — find the installation, claim and record
the message, render the JSON body with Bearer auth, call the fake provider through the outbound
client, map its answer, record the result — into a service running in its own process on a
SQLite file in a temporary directory.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import build_server
from server.config import Settings

from ._harness import BenchEnv, Benchmark, Result, measure

__all__ = ["SERVICE", "start_service"]

_RUNNING: list[object] = []


def bench_definition(provider_url: str) -> str:
    return json.dumps(
        {
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
    )


async def start_service(
    provider_url: str,
    sidecar: bool = False,
    database_url: str = "",
    secret_key_file: str = "",
    install: bool = True,
) -> str:
    """(In a child process.) The service on a temporary SQLite file (or ``database_url``), with
    the bench integration registered and enabled for org ``bench`` on +15550001111 (unless
    ``install`` is false: a second replica of a database that has it). Returns the gRPC address,
    and with the sidecar ``ADDRESS|http://127.0.0.1:PORT/webhooks/bench/TOKEN``."""
    data_dir = Path(tempfile.mkdtemp(prefix="msgbridge-bench-"))
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=data_dir,
        database_url=database_url,
        secret_key_file=Path(secret_key_file) if secret_key_file else None,
        outbound_allow=("127.0.0.1",),
        sidecar=sidecar,
        log_level="WARNING",
    )
    server, port = await build_server(settings)
    await server.start()
    _RUNNING.append(server)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        if install:
            await server.catalog.register(bench_definition(provider_url))
            installation = await stub.EnableIntegration(
                gateway_pb2.EnableIntegrationRequest(
                    org_id="bench",
                    integration_id="bench",
                    properties={"API key": "bench-key"},
                    numbers=[gateway_pb2.NumberAssignment(number="+15550001111", users=["101"])],
                )
            )
        else:
            listed = await stub.ListInstallations(gateway_pb2.ListInstallationsRequest())
            installation = listed.installations[0]
    if not sidecar:
        return f"127.0.0.1:{port}"
    path = installation.webhook_url.split("/webhooks/", 1)[1]
    return f"127.0.0.1:{port}|http://127.0.0.1:{server.http_port}/webhooks/{path}"


def send_request() -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(
        org_id="bench",
        to="+15550002222",
        text="Hello from the benchmark — msgbridge",
        extension="101",
        domain="example.org",
    )
    setattr(request, "from", "+15550001111")
    return request


async def send(env: BenchEnv, benchmark: Benchmark) -> Result:
    target = await env.server("msgbridge service", start_service, env.fake_url)
    request = send_request()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        async def call() -> object:
            return await stub.SendMessage(request)

        return await measure(benchmark, call)


SERVICE: list[Benchmark] = [
    Benchmark(name="msgbridge SendMessage (full path)", concurrency=c, run=send) for c in (1, 64)
]
