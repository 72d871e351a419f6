"""API access end to end: the real service on 127.0.0.1 with tokens, TLS and mutual TLS.

``start_secured`` builds the real service (``build_server``) with the access settings given.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import GatewayServer, build_server
from server.demo import RunningFakeProvider
from server.security.api_access import hash_token
from server.sidecar import Delivery, GrpcIngestForwarder, Header

from .conftest import definition, rpc_details, service_settings

TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class Tokens:
    read: str
    full: str
    ingest: str
    file: Path


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    """A read token in clear, full and ingest tokens stored hashed."""
    read, full, ingest = (secrets.token_urlsafe(24) for _ in range(3))
    file = tmp_path / "api-tokens"
    file.write_text(
        "# scope token [name]\n"
        f"read {read}\n"
        f"full sha256:{hash_token(full).hex()} deployer\n"
        f"ingest sha256:{hash_token(ingest).hex()} sidecar\n",
        encoding="utf-8",
    )
    file.chmod(0o600)
    return Tokens(read=read, full=full, ingest=ingest, file=file)


StartSecured = Callable[..., Awaitable[tuple[GatewayServer, int]]]


@pytest.fixture
async def start_secured(tmp_path: Path) -> AsyncIterator[StartSecured]:
    """Builds and starts the real service with the access settings given."""
    running: list[GatewayServer] = []

    async def start(**options: Any) -> tuple[GatewayServer, int]:
        data_dir = tmp_path / f"data{len(running)}"
        built, port = await build_server(service_settings(data_dir, **options))
        await built.start()
        running.append(built)
        return built, port

    try:
        yield start
    finally:
        for built in running:
            await built.stop(0)


@dataclass(frozen=True, kw_only=True)
class Secured:
    target: str
    channel: grpc.aio.Channel
    gateway: gateway_pb2_grpc.GatewayStub


@pytest.fixture
async def secured(start_secured: StartSecured, tokens: Tokens) -> AsyncIterator[Secured]:
    """A plaintext channel to a service whose API needs tokens."""
    _, port = await start_secured(api_tokens_file=tokens.file)
    target = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(target) as channel:
        yield Secured(target=target, channel=channel, gateway=gateway_pb2_grpc.GatewayStub(channel))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def refusal(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def reason(error: grpc.aio.AioRpcError) -> str:
    info = rpc_details(error)["error_info"]
    assert info.domain == "msgbridge"
    return str(info.reason)


def send_request() -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(org_id="org-1", to="+15557654321", text="hello")
    setattr(request, "from", "+15550001111")
    return request


async def install_acme(
    stub: gateway_pb2_grpc.GatewayStub, provider: RunningFakeProvider, token: str
) -> gateway_pb2.Installation:
    """Register the conftest definition and install it for org-1 (with ``token``)."""
    await stub.RegisterIntegration(
        gateway_pb2.RegisterIntegrationRequest(definition_json=definition(provider.url)),
        metadata=bearer(token),
        timeout=TIMEOUT,
    )
    installation: gateway_pb2.Installation = await stub.EnableIntegration(
        gateway_pb2.EnableIntegrationRequest(
            org_id="org-1",
            integration_id="acme-sms",
            properties={"API key": "key-123"},
            numbers=[gateway_pb2.NumberAssignment(number="+15550001111", users=["101"])],
        ),
        metadata=bearer(token),
        timeout=TIMEOUT,
    )
    return installation


def message_delivery(installation: gateway_pb2.Installation) -> Delivery:
    """What the sidecar would forward for an inbound "hi" to the installation's webhook URL."""
    body = {
        "method": "message",
        "params": {"from": "+61855555555", "to": "+15550001111", "content": "hi"},
    }
    path = "/" + installation.webhook_url.split("://", 1)[1].split("/", 1)[1]
    return Delivery(
        method="POST",
        path=path,
        headers=(Header("Content-Type", "application/json"),),
        body=json.dumps(body).encode(),
        url=installation.webhook_url,
        remote_addr="127.0.0.1",
    )


async def test_a_call_without_a_token_is_unauthenticated(secured: Secured) -> None:
    for call in (
        secured.gateway.ListIntegrations(gateway_pb2.ListIntegrationsRequest(), timeout=TIMEOUT),
        secured.gateway.SendMessage(send_request(), timeout=TIMEOUT),
    ):
        error = await refusal(call)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason(error) == "TOKEN_MISSING"


async def test_an_unknown_or_malformed_token_is_unauthenticated(
    secured: Secured, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.security.api_access")
    request = gateway_pb2.ListIntegrationsRequest()
    unknown = await refusal(
        secured.gateway.ListIntegrations(
            request, metadata=bearer(tokens.full + "x"), timeout=TIMEOUT
        )
    )
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason(unknown) == "TOKEN_UNKNOWN"
    basic = await refusal(
        secured.gateway.ListIntegrations(
            request, metadata=(("authorization", f"Basic {tokens.full}"),), timeout=TIMEOUT
        )
    )
    assert basic.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason(basic) == "TOKEN_MALFORMED"
    refused = [r for r in caplog.records if r.getMessage() == "API call refused"]
    assert [getattr(r, "reason", None) for r in refused] == ["TOKEN_UNKNOWN", "TOKEN_MALFORMED"]
    assert tokens.full not in caplog.text
    assert tokens.full not in unknown.details() + basic.details()


async def test_a_read_token_reads_and_only_a_full_token_sends(
    secured: Secured, tokens: Tokens, provider: RunningFakeProvider
) -> None:
    await install_acme(secured.gateway, provider, tokens.full)
    read = bearer(tokens.read)
    fetched = await secured.gateway.GetIntegration(
        gateway_pb2.GetIntegrationRequest(integration_id="acme-sms"), metadata=read, timeout=TIMEOUT
    )
    assert fetched.id == "acme-sms"

    denied = await refusal(
        secured.gateway.SendMessage(send_request(), metadata=read, timeout=TIMEOUT)
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    info = rpc_details(denied)["error_info"]
    assert (info.domain, info.reason) == ("msgbridge", "SCOPE_INSUFFICIENT")
    assert dict(info.metadata) == {
        "method": "/msgbridge.v1.Gateway/SendMessage",
        "scope": "read",
        "required": "full",
    }
    assert provider.state.requests == []

    sent = await secured.gateway.SendMessage(
        send_request(), metadata=bearer(tokens.full), timeout=TIMEOUT
    )
    assert sent.message_id
    assert len(provider.state.requests) == 1


async def test_only_the_ingest_token_reaches_ingest_and_it_reaches_nothing_else(
    secured: Secured, tokens: Tokens, provider: RunningFakeProvider
) -> None:
    installation = await install_acme(secured.gateway, provider, tokens.full)
    on_gateway = await refusal(
        secured.gateway.ListIntegrations(
            gateway_pb2.ListIntegrationsRequest(), metadata=bearer(tokens.ingest), timeout=TIMEOUT
        )
    )
    assert on_gateway.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(on_gateway) == "SCOPE_INSUFFICIENT"

    delivery = message_delivery(installation)
    for token in (tokens.full, tokens.read):
        other = GrpcIngestForwarder(secured.target, token=token)
        try:
            error = await refusal(other.ingest(delivery))
        finally:
            await other.aclose()
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert rpc_details(error)["error_info"].metadata["required"] == "ingest"

    # The real sidecar forwarder, as `msgbridge sidecar --core …` runs it.
    sidecar = GrpcIngestForwarder(secured.target, token=tokens.ingest)
    try:
        assert await sidecar.ready()  # health, with the ingest token sent along
        verdict = await sidecar.ingest(delivery)
    finally:
        await sidecar.aclose()
    assert verdict.http_status == 200
    listed = await secured.gateway.ListEvents(
        gateway_pb2.ListEventsRequest(), metadata=bearer(tokens.read), timeout=TIMEOUT
    )
    assert [(event.type, event.text) for event in listed.events] == [
        (gateway_pb2.Event.MESSAGE, "hi")
    ]


async def test_streaming_calls_are_checked_too(
    secured: Secured, tokens: Tokens, provider: RunningFakeProvider
) -> None:
    installation = await install_acme(secured.gateway, provider, tokens.full)
    sidecar = GrpcIngestForwarder(secured.target, token=tokens.ingest)
    try:
        assert (await sidecar.ingest(message_delivery(installation))).http_status == 200
    finally:
        await sidecar.aclose()

    request = gateway_pb2.StreamEventsRequest(earliest=True)
    for metadata, code, why in (
        ((), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
        (bearer(tokens.ingest), grpc.StatusCode.PERMISSION_DENIED, "SCOPE_INSUFFICIENT"),
    ):
        refused = secured.gateway.StreamEvents(request, metadata=metadata, timeout=TIMEOUT)
        error = await refusal(refused.read())
        assert (error.code(), reason(error)) == (code, why)

    stream = secured.gateway.StreamEvents(request, metadata=bearer(tokens.read), timeout=TIMEOUT)
    first = await stream.read()
    stream.cancel()
    assert [(event.type, event.text) for event in first.events] == [
        (gateway_pb2.Event.MESSAGE, "hi")
    ]


async def test_health_and_reflection_need_no_token(secured: Secured) -> None:
    health = health_pb2_grpc.HealthStub(secured.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(secured.channel)
    call = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT
    )
    answer = await call.read()
    call.cancel()
    names = {service.name for service in answer.list_services_response.service}
    assert {"msgbridge.v1.Gateway", "msgbridge.v1.Ingest"} <= names


async def test_without_tokens_everything_is_open(start_secured: StartSecured) -> None:
    _, port = await start_secured()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        reply = await stub.ListIntegrations(gateway_pb2.ListIntegrationsRequest(), timeout=TIMEOUT)
    assert list(reply.integrations) == []


@dataclass(frozen=True, kw_only=True)
class Pki:
    ca: trustme.CA
    cert: Path
    key: Path
    ca_file: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA made for the test and a server certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca=ca, cert=cert, key=key, ca_file=ca_file)


def client_credentials(ca: trustme.CA, client: trustme.LeafCert | None = None) -> Any:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem.bytes(),
        private_key=client.private_key_pem.bytes(),
        certificate_chain=b"".join(blob.bytes() for blob in client.cert_chain_pems),
    )


async def list_integrations(
    target: str, credentials: Any | None, metadata: tuple[tuple[str, str], ...] = ()
) -> gateway_pb2.ListIntegrationsResponse:
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    async with channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        reply: gateway_pb2.ListIntegrationsResponse = await stub.ListIntegrations(
            gateway_pb2.ListIntegrationsRequest(), metadata=metadata, timeout=TIMEOUT
        )
        return reply


async def test_tls_serves_callers_that_trust_the_ca(start_secured: StartSecured, pki: Pki) -> None:
    _, port = await start_secured(tls_cert=pki.cert, tls_key=pki.key)
    target = f"127.0.0.1:{port}"
    reply = await list_integrations(target, client_credentials(pki.ca))
    assert list(reply.integrations) == []

    plaintext = await refusal(list_integrations(target, None))
    assert plaintext.code() == grpc.StatusCode.UNAVAILABLE
    untrusted = await refusal(list_integrations(target, client_credentials(trustme.CA())))
    assert untrusted.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(
    start_secured: StartSecured, pki: Pki
) -> None:
    _, port = await start_secured(tls_cert=pki.cert, tls_key=pki.key, tls_client_ca=pki.ca_file)
    target = f"127.0.0.1:{port}"

    without = await refusal(list_integrations(target, client_credentials(pki.ca)))
    assert without.code() == grpc.StatusCode.UNAVAILABLE
    stranger = trustme.CA().issue_cert("intruder@example.com")
    foreign = await refusal(list_integrations(target, client_credentials(pki.ca, stranger)))
    assert foreign.code() == grpc.StatusCode.UNAVAILABLE

    client = pki.ca.issue_cert("telephony-core@example.com")
    reply = await list_integrations(target, client_credentials(pki.ca, client))
    assert list(reply.integrations) == []


async def test_tokens_over_tls(start_secured: StartSecured, pki: Pki, tokens: Tokens) -> None:
    _, port = await start_secured(
        grpc_listen="127.0.0.1:0", tls_cert=pki.cert, tls_key=pki.key, api_tokens_file=tokens.file
    )
    target = f"127.0.0.1:{port}"
    credentials = client_credentials(pki.ca)
    missing = await refusal(list_integrations(target, credentials))
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await list_integrations(target, credentials, bearer(tokens.read))
    assert list(reply.integrations) == []
