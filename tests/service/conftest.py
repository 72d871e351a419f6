"""The service in-process on real sockets: a grpc.aio server on port 0, a fake provider on
127.0.0.1, a SQLite file under tmp_path."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import GatewayServer, build_server
from server.config import Settings
from server.demo import RunningFakeProvider, start_fake_provider

SEED_MODELS: list[dict[str, Any]] = [
    {
        "event_key": "message",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "content": "$content$"},
        },
    }
]


def definition(
    provider_url: str,
    *,
    id: str = "acme-sms",
    content_type: str = "application/json",
    method: str = "POST",
    parameters: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    properties: list[Any] | None = None,
    response_map: Any = None,
    path: str = "/messages",
    send_file: bool = True,
) -> str:
    """A definition whose requests go to the fake provider."""
    request: dict[str, Any] = {
        "request_method": method,
        "request_url": provider_url + path,
        "request_content_type": content_type,
        "request_parameters": parameters
        or {"from": "$from$", "to": "$to$", "content": "$content$"},
        "response_map": response_map
        if response_map is not None
        else {"data": {"id": "$messageid$"}},
    }
    doc: dict[str, Any] = {
        "id": id,
        "name": id,
        "class": "sms",
        "properties": properties if properties is not None else ["API key"],
        "auth": auth if auth is not None else {"type": "Bearer", "token": "$API key$"},
        "API": {"SendMessage": request},
        "Webhook": SEED_MODELS,
    }
    if send_file:
        doc["API"]["SendFile"] = {
            **request,
            "request_parameters": {
                "from": "$from$",
                "to": "$to$",
                "media_url": "$content$",
                "caption": "$text$",
            },
        }
    return json.dumps(doc)


def rpc_details(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call: ErrorInfo, BadRequest, RetryInfo."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no rich status on {error.code()}: {error.details()}"
    status = status_pb2.Status.FromString(raw)
    assert status.code == error.code().value[0]
    out: dict[str, Any] = {}
    for detail in status.details:
        for name, cls in (
            ("error_info", error_details_pb2.ErrorInfo),
            ("bad_request", error_details_pb2.BadRequest),
            ("retry_info", error_details_pb2.RetryInfo),
        ):
            if detail.Is(cls.DESCRIPTOR):
                message = cls()
                detail.Unpack(message)
                out[name] = message
    return out


def service_settings(data_dir: Path, **changes: Any) -> Settings:
    base = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=data_dir,
        outbound_allow=("127.0.0.1",),
        sidecar=False,
        provider_timeout_s=5.0,
        send_deadline_s=10.0,
        # Retries as in production, only quicker (docs/delivery.md, "Retries").
        send_retry_initial_s=0.05,
        send_retry_max_s=0.5,
        # Files of inbound messages are fetched only where a test is about media
        # (tests/service/test_media.py): elsewhere their made-up URLs are kept as they came.
        media_fetch=False,
        log_format="text",
    )
    return replace(base, **changes)


class Gateway:
    """A running service and a stub connected to it."""

    def __init__(self, server: GatewayServer, port: int, channel: grpc.aio.Channel) -> None:
        self.server = server
        self.port = port
        self.channel = channel
        self.stub = gateway_pb2_grpc.GatewayStub(channel)

    async def register(self, definition_json: str) -> gateway_pb2.Integration:
        reply = await self.stub.RegisterIntegration(
            gateway_pb2.RegisterIntegrationRequest(definition_json=definition_json)
        )
        return reply.integration

    async def enable(
        self,
        integration_id: str,
        *,
        org: str = "org-1",
        numbers: dict[str, list[str]] | None = None,
        properties: dict[str, str] | None = None,
        region: str = "",
    ) -> gateway_pb2.Installation:
        return await self.stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=org,
                integration_id=integration_id,
                properties=properties if properties is not None else {"API key": "key-123"},
                numbers=[
                    gateway_pb2.NumberAssignment(number=n, users=u)
                    for n, u in (numbers or {"+15550001111": ["101"]}).items()
                ],
                default_region=region,
            )
        )

    async def send(self, **fields: Any) -> gateway_pb2.SendReply:
        request = gateway_pb2.SendMessageRequest(
            org_id=fields.pop("org", "org-1"),
            to=fields.pop("to", "+15557654321"),
            text=fields.pop("text", "hello"),
            **fields,
        )
        if not getattr(request, "from"):
            setattr(request, "from", "+15550001111")
        return await self.stub.SendMessage(request)


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def provider() -> AsyncIterator[RunningFakeProvider]:
    fake = await start_fake_provider()
    try:
        yield fake
    finally:
        await fake.aclose()


# The store the service tests run on: "sqlite" (a file under tmp_path) or "postgres" (a database
# of their own on the machine's server, created for each test and dropped after it); .ci/run runs
# the suite both ways.
TEST_DATABASE = os.environ.get("MSGBRIDGE_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN = os.environ.get(
    "MSGBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _create_database() -> str:
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _database_url(name: str) -> str:
    base = POSTGRES_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Starts gateways (each with its own channel); all are stopped at the end of the test.

    Gateways started with the same ``data_dir`` share one store (a restart sees what the first
    one stored), on SQLite or on PostgreSQL as ``MSGBRIDGE_TEST_DATABASE`` says.
    """
    running: list[Gateway] = []
    databases: dict[Path, str] = {}

    async def start(**changes: Any) -> Gateway:
        data_dir = changes.pop("data_dir", tmp_path / "data")
        if TEST_DATABASE == "postgres" and "database_url" not in changes:
            if data_dir not in databases:
                databases[data_dir] = await _create_database()
            changes["database_url"] = _database_url(databases[data_dir])
        server, port = await build_server(service_settings(data_dir, **changes))
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        gateway = Gateway(server, port, channel)
        running.append(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in running:
            await gateway.channel.close()
            await gateway.server.stop(0)
        for name in databases.values():
            await _drop_database(name)


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await start_gateway()
    return gateway


async def stop(gateway: Gateway) -> None:
    await gateway.channel.close()
    await gateway.server.stop(0)
