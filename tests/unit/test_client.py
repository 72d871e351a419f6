"""The typed clients against a real grpc.aio server (127.0.0.1, port 0) serving a fake Gateway."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from _fake_gateway import (
    INVALID_DEFINITION,
    PERMISSION_DENIED,
    RATE_LIMITED,
    RunningGateway,
    rich_status,
    running_gateway,
)
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2

from client import (
    AlreadyExistsError,
    AsyncClient,
    Client,
    ClientOptions,
    FailedPreconditionError,
    InvalidArgumentError,
    MsgbridgeError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TLSConfig,
    UnauthenticatedError,
    UnavailableError,
    sender,
)
from msgbridge.v1 import gateway_pb2

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    with running_gateway() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fake(gateway: RunningGateway) -> None:
    gateway.fake.reset()


@pytest.fixture
def sync_client(gateway: RunningGateway) -> Iterator[Client]:
    with Client.connect(gateway.target, options=ClientOptions(token=TOKEN, timeout=10)) as client:
        yield client


@pytest.fixture
async def async_client(gateway: RunningGateway) -> AsyncIterator[AsyncClient]:
    options = ClientOptions(token=TOKEN, timeout=10)
    async with await AsyncClient.connect(gateway.target, options=options) as client:
        yield client


# -- results and metadata -------------------------------------------------------------------------


async def test_async_register_returns_the_stored_integration_and_sends_the_bearer_token(
    gateway: RunningGateway, async_client: AsyncClient
) -> None:
    reply = await async_client.register_integration('{"name": "Acme"}', validate_only=True)

    assert isinstance(reply, gateway_pb2.RegisterIntegrationResponse)
    assert reply.validate_only is True
    assert reply.integration.id == "acme"
    assert reply.integration.definition_json == '{"name": "Acme"}'
    (call,) = gateway.fake.calls
    assert call.method == "RegisterIntegration"
    assert call.request.validate_only is True
    assert call.metadata["authorization"] == f"Bearer {TOKEN}"


def test_sync_client_sends_the_bearer_token_on_every_call(
    gateway: RunningGateway, sync_client: Client
) -> None:
    sync_client.get_integration("acme", version=2)
    list(sync_client.list_integrations())

    assert [call.method for call in gateway.fake.calls] == [
        "GetIntegration",
        "ListIntegrations",
        "ListIntegrations",
    ]
    assert all(call.metadata["authorization"] == f"Bearer {TOKEN}" for call in gateway.fake.calls)
    assert gateway.fake.requests("GetIntegration")[0].version == 2


def test_no_token_sends_no_authorization(gateway: RunningGateway) -> None:
    with Client.connect(gateway.target) as client:
        client.get_installation("inst-9")

    assert "authorization" not in gateway.fake.calls[0].metadata


async def test_list_integrations_iterates_every_page(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    async_ids = [i.id async for i in async_client.list_integrations(page_size=2)]
    sync_ids = [i.id for i in sync_client.list_integrations(page_size=2)]

    assert async_ids == sync_ids == ["acme", "beta", "gamma"]
    tokens = [r.page_token for r in gateway.fake.requests("ListIntegrations")]
    assert tokens == ["", "p2", "", "p2"]


async def test_enable_integration_builds_numbers_from_a_mapping_or_assignments(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    installation = await async_client.enable_integration(
        org_id="acme",
        integration_id="acme",
        properties={"api_key": "k=v", "account": "AC1"},
        numbers={"+15550001111": ["101", "102"], "SHORT": []},
        default_region="US",
    )
    sync_client.enable_integration(
        org_id="acme",
        integration_id="acme",
        properties={},
        numbers=[gateway_pb2.NumberAssignment(number="+15550003333", users=["7"])],
    )

    first, second = gateway.fake.requests("EnableIntegration")
    assert dict(first.properties) == {"api_key": "k=v", "account": "AC1"}
    assert [(n.number, list(n.users)) for n in first.numbers] == [
        ("+15550001111", ["101", "102"]),
        ("SHORT", []),
    ]
    assert first.default_region == "US"
    assert [(n.number, list(n.users)) for n in second.numbers] == [("+15550003333", ["7"])]
    assert second.default_region == ""
    assert installation.webhook_url == "https://gw.example/webhooks/acme/tok-inst-1"
    secret = next(p for p in installation.properties if p.name == "api_key")
    assert secret.secret and secret.set and secret.value == ""


def test_update_installation_sets_numbers_and_region_only_when_given(
    gateway: RunningGateway, sync_client: Client
) -> None:
    sync_client.update_installation("inst-1", properties={"account": "AC2"})
    sync_client.update_installation(
        "inst-1", clear_properties=["account"], numbers={}, default_region=""
    )

    keep, replace = gateway.fake.requests("UpdateInstallation")
    assert dict(keep.properties) == {"account": "AC2"}
    assert keep.set_numbers is False
    assert not keep.HasField("default_region")
    assert list(replace.clear_properties) == ["account"]
    assert replace.set_numbers is True and list(replace.numbers) == []
    assert replace.HasField("default_region") and replace.default_region == ""


async def test_send_message_carries_from_and_every_field(
    gateway: RunningGateway, async_client: AsyncClient
) -> None:
    reply = await async_client.send_message(
        org_id="acme",
        from_="+15550001111",
        to="12345",
        text="hello 👋",
        extension="101",
        domain="acme.example",
        integration_id="acme",
        idempotency_key="k-1",
        metadata={"ticket": "42"},
    )

    (request,) = gateway.fake.requests("SendMessage")
    assert sender(request) == "+15550001111"
    assert (request.org_id, request.to, request.text) == ("acme", "12345", "hello 👋")
    assert (request.extension, request.domain, request.integration_id) == (
        "101",
        "acme.example",
        "acme",
    )
    assert request.idempotency_key == "k-1"
    assert dict(request.metadata) == {"ticket": "42"}
    assert reply.message_id == "msg-1"
    assert reply.HasField("provider_message_id") and reply.provider_message_id == "SM123"


def test_send_file_carries_the_media_fields(gateway: RunningGateway, sync_client: Client) -> None:
    reply = sync_client.send_file(
        org_id="acme",
        from_="+15550001111",
        to="+15550002222",
        media_url="https://files.example/a.png",
        text="caption",
        media_type="image/png",
        filename="a.png",
    )

    (request,) = gateway.fake.requests("SendFile")
    assert sender(request) == "+15550001111"
    assert (request.media_url, request.text, request.media_type, request.filename) == (
        "https://files.example/a.png",
        "caption",
        "image/png",
        "a.png",
    )
    assert not reply.HasField("provider_message_id")
    assert reply.attempts == 2


def test_every_other_unary_method_reaches_its_rpc(
    gateway: RunningGateway, sync_client: Client
) -> None:
    assert sync_client.delete_integration("acme", force=True).disabled_installations == 2
    assert sync_client.get_installation("inst-7").id == "inst-7"
    assert sync_client.disable_integration("inst-7").enabled is False
    assert sync_client.retry_subscription("inst-7").id == "inst-7"
    message = sync_client.get_message("msg-9")
    assert message.message_id == "msg-9" and sender(message) == "+15550001111"
    assert sync_client.ack_events("core", [3, 4]).acknowledged == 2
    assert [e.cursor for e in sync_client.replay_webhook("wh-1").events] == [1]
    installations = list(sync_client.list_installations(org_id="acme", integration_id="acme"))
    webhooks = list(sync_client.list_unmatched_webhooks(integration_id="acme"))

    assert [i.id for i in installations] == ["inst-1", "inst-2"]
    assert [w.id for w in webhooks] == ["wh-1", "wh-2"]
    assert gateway.fake.requests("DeleteIntegration")[0].force is True
    assert list(gateway.fake.requests("AckEvents")[0].cursors) == [3, 4]
    assert gateway.fake.requests("AckEvents")[0].consumer == "core"
    assert {(r.org_id, r.integration_id) for r in gateway.fake.requests("ListInstallations")} == {
        ("acme", "acme")
    }


async def test_check_health(async_client: AsyncClient, sync_client: Client) -> None:
    assert (await async_client.check_health()).status == health_pb2.HealthCheckResponse.SERVING
    assert sync_client.check_health("down").status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(NotFoundError):
        sync_client.check_health("no-such-service")


# -- errors ---------------------------------------------------------------------------------------


async def test_async_error_carries_code_message_and_lazily_parsed_error_info(
    gateway: RunningGateway, async_client: AsyncClient
) -> None:
    gateway.fake.fail("SendMessage", PERMISSION_DENIED)

    with pytest.raises(PermissionDeniedError) as caught:
        await async_client.send_message(org_id="acme", from_="+15559999999", to="1", text="x")

    error = caught.value
    assert isinstance(error, MsgbridgeError)
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert error.message == PERMISSION_DENIED.message
    assert "status" not in vars(error)  # nothing parsed until a detail is asked for
    assert error.reason == "NUMBER_NOT_IN_INSTALLATION"
    assert "status" in vars(error)
    assert error.error_info is not None
    assert error.error_info.domain == "msgbridge"
    assert dict(error.error_info.metadata) == {"integration": "acme"}
    assert error.bad_request is None and error.retry_info is None
    assert str(error).startswith("PERMISSION_DENIED (NUMBER_NOT_IN_INSTALLATION): +15559999999")


def test_sync_error_carries_field_violations(gateway: RunningGateway, sync_client: Client) -> None:
    gateway.fake.fail("RegisterIntegration", INVALID_DEFINITION)

    with pytest.raises(InvalidArgumentError) as caught:
        sync_client.register_integration("{}")

    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_DEFINITION"
    assert [(v.field, v.description) for v in error.field_violations] == [
        ("/API/SendMessage/request_url", "must be an absolute URL"),
        ("/properties/0", "a property needs a name"),
    ]
    assert [type(d) for d in error.details] == [
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
    ]


async def test_retry_delay_comes_from_retry_info(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    gateway.fake.fail("SendMessage", RATE_LIMITED)

    with pytest.raises(ResourceExhaustedError) as from_async:
        await async_client.send_message(org_id="a", from_="1", to="2", text="x")
    with pytest.raises(ResourceExhaustedError) as from_sync:
        sync_client.send_message(org_id="a", from_="1", to="2", text="x")

    for error in (from_async.value, from_sync.value):
        assert error.retry_delay == datetime.timedelta(seconds=7.5)
        assert error.error_info is not None
        assert error.error_info.metadata["provider_status"] == "429"


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (code_pb2.NOT_FOUND, NotFoundError),
        (code_pb2.ALREADY_EXISTS, AlreadyExistsError),
        (code_pb2.FAILED_PRECONDITION, FailedPreconditionError),
        (code_pb2.UNAUTHENTICATED, UnauthenticatedError),
        (code_pb2.UNAVAILABLE, UnavailableError),
        (code_pb2.INTERNAL, MsgbridgeError),
    ],
)
def test_each_code_family_has_its_exception(
    gateway: RunningGateway,
    sync_client: Client,
    code: int,
    error_type: type[MsgbridgeError],
) -> None:
    gateway.fake.fail("GetInstallation", rich_status(code, "no", reason="R"))

    with pytest.raises(MsgbridgeError) as caught:
        sync_client.get_installation("inst-1")

    assert type(caught.value) is error_type
    assert caught.value.code.value[0] == code
    assert caught.value.reason == "R"


def test_an_error_without_details_has_none(gateway: RunningGateway, sync_client: Client) -> None:
    gateway.fake.fail_plain("GetMessage", grpc.StatusCode.NOT_FOUND, "no message msg-0")

    with pytest.raises(NotFoundError) as caught:
        sync_client.get_message("msg-0")

    error = caught.value
    assert (error.message, error.status, error.details) == ("no message msg-0", None, ())
    assert (error.error_info, error.reason, error.field_violations) == (None, "", ())
    assert error.retry_delay is None
    assert str(error) == "NOT_FOUND: no message msg-0"


def test_an_unusable_details_trailer_reads_as_no_details(
    gateway: RunningGateway, sync_client: Client
) -> None:
    gateway.fake.fail_plain(
        "GetMessage",
        grpc.StatusCode.INTERNAL,
        "broken",
        trailing_metadata=(("grpc-status-details-bin", b"\xff\xfenot a status"),),
    )

    with pytest.raises(MsgbridgeError) as caught:
        sync_client.get_message("msg-0")

    assert caught.value.code is grpc.StatusCode.INTERNAL
    assert caught.value.status is None and caught.value.details == ()


def test_unknown_detail_types_stay_any(gateway: RunningGateway, sync_client: Client) -> None:
    status = rich_status(code_pb2.INTERNAL, "odd", reason="ODD")
    status.details.add().Pack(duration_pb2.Duration(seconds=3))
    gateway.fake.fail("GetMessage", status)

    with pytest.raises(MsgbridgeError) as caught:
        sync_client.get_message("msg-0")

    info, other = caught.value.details
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(other, any_pb2.Any) and other.Is(duration_pb2.Duration.DESCRIPTOR)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_server_is_unavailable() -> None:
    target = f"127.0.0.1:{_closed_port()}"
    with Client.connect(target) as client, pytest.raises(UnavailableError):
        client.check_health()
    async with await AsyncClient.connect(target) as aclient:
        with pytest.raises(UnavailableError):
            await aclient.check_health()


# -- events ---------------------------------------------------------------------------------------


async def test_stream_events_flattens_the_batches_in_order(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    async_cursors = [e.cursor async for e in async_client.stream_events(earliest=True)]
    sync_cursors = [e.cursor for e in sync_client.stream_events(after_cursor=0, max_batch=3)]
    batches = [len(b.events) for b in sync_client.stream_event_batches(earliest=True)]

    assert async_cursors == sync_cursors == [1, 2, 3, 4, 5]
    assert batches == [2, 2, 1]
    first, second, _ = gateway.fake.requests("StreamEvents")
    assert first.WhichOneof("start") == "earliest"
    # after_cursor=0 is a real start (every event after 0), not "from now".
    assert second.WhichOneof("start") == "after_cursor" and second.after_cursor == 0
    assert second.max_batch == 3


async def test_stream_events_filters_and_starts_from_now_by_default(
    gateway: RunningGateway, async_client: AsyncClient
) -> None:
    from_now = [e async for e in async_client.stream_events()]
    filtered = [
        e.cursor
        async for e in async_client.stream_events(
            after_cursor=1,
            org_id="acme",
            types=[gateway_pb2.Event.MESSAGE, gateway_pb2.Event.MESSAGE_DELIVERED],
            consumer="core",
        )
    ]

    assert from_now == []
    assert filtered == [3]
    plain, request = gateway.fake.requests("StreamEvents")
    assert plain.WhichOneof("start") is None
    assert request.consumer == "core" and request.org_id == "acme"
    assert list(request.types) == [gateway_pb2.Event.MESSAGE, gateway_pb2.Event.MESSAGE_DELIVERED]


def test_stream_events_rejects_two_starts(sync_client: Client) -> None:
    with pytest.raises(ValueError, match="not both"):
        next(sync_client.stream_events(after_cursor=3, earliest=True))


async def test_leaving_a_live_stream_cancels_the_call(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    gateway.fake.hold_stream = True

    async with contextlib.aclosing(async_client.stream_events(earliest=True)) as stream:
        async for event in stream:
            assert event.cursor == 1
            break
    assert await asyncio.to_thread(gateway.fake.stream_cancelled.wait, 10)

    # A generator left behind is closed by the event loop when collected: the call ends too.
    gateway.fake.stream_cancelled.clear()
    async for event in async_client.stream_events(earliest=True):
        assert event.cursor == 1
        break
    assert await asyncio.to_thread(gateway.fake.stream_cancelled.wait, 10)

    gateway.fake.stream_cancelled.clear()
    events = sync_client.stream_events(earliest=True)
    assert [next(events).cursor for _ in range(5)] == [1, 2, 3, 4, 5]
    events.close()
    assert gateway.fake.stream_cancelled.wait(timeout=10)


async def test_a_stream_failure_is_raised_with_its_details(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    gateway.fake.fail_stream_after_first_batch = rich_status(
        code_pb2.FAILED_PRECONDITION, "consumer moved", reason="CONSUMER_RESET"
    )
    seen: list[int] = []

    with pytest.raises(FailedPreconditionError) as from_async:
        async for event in async_client.stream_events(earliest=True):
            seen.append(event.cursor)
    with pytest.raises(FailedPreconditionError) as from_sync:
        for event in sync_client.stream_events(earliest=True):
            seen.append(event.cursor)

    assert seen == [1, 2, 1, 2]
    assert from_async.value.reason == from_sync.value.reason == "CONSUMER_RESET"


async def test_list_events_pages_by_cursor(
    gateway: RunningGateway, async_client: AsyncClient, sync_client: Client
) -> None:
    everything = [e.cursor async for e in async_client.list_events()]
    after_cursor = [e.cursor for e in sync_client.list_events(after_cursor=2, page_size=2)]

    assert everything == [1, 2, 3, 4, 5]
    assert after_cursor == [3, 4, 5]
    starts = [r.after_cursor for r in gateway.fake.requests("ListEvents")]
    # Server default page: ask until an empty page; page_size 2: stop at the short page.
    assert starts == [0, 2, 4, 5, 2, 4]


def test_list_events_passes_filters(gateway: RunningGateway, sync_client: Client) -> None:
    events = list(
        sync_client.list_events(
            org_id="other", integration_id="acme", types=[gateway_pb2.Event.MESSAGE], page_size=10
        )
    )

    assert [e.cursor for e in events] == [4]
    (request,) = gateway.fake.requests("ListEvents")
    assert (request.org_id, request.integration_id, list(request.types)) == ("other", "acme", [1])


# -- options and TLS ------------------------------------------------------------------------------


def test_options_keep_secrets_out_of_repr_and_check_mtls_pairs() -> None:
    options = ClientOptions(
        token=TOKEN, tls=TLSConfig(client_certificate=b"c", client_private_key=b"k")
    )

    assert TOKEN not in repr(options)
    assert "b'k'" not in repr(options)
    assert options.call_metadata() == (("authorization", f"Bearer {TOKEN}"),)
    with pytest.raises(ValueError, match="both"):
        TLSConfig(client_certificate=b"c")
    with pytest.raises(ValueError, match="positive"):
        ClientOptions(timeout=0)


async def test_mutual_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost")
    client_cert = ca.issue_cert("client@msgbridge.test")
    credentials = grpc.ssl_server_credentials(
        [(server_cert.private_key_pem.bytes(), server_cert.cert_chain_pems[0].bytes())],
        root_certificates=ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file = tmp_path / "client.pem"
    key_file = tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))

    with running_gateway(credentials) as running:
        mtls = TLSConfig.from_files(
            root_certificates=ca_file,
            client_certificate=cert_file,
            client_private_key=key_file,
            server_name="localhost",
        )
        options = ClientOptions(tls=mtls, token=TOKEN, timeout=10)
        async with await AsyncClient.connect(running.target, options=options) as aclient:
            assert (await aclient.get_installation("inst-1")).id == "inst-1"
        with Client.connect(running.target, options=options) as client:
            assert client.get_installation("inst-2").id == "inst-2"
        assert [c.metadata["authorization"] for c in running.fake.calls] == [f"Bearer {TOKEN}"] * 2

        no_client_cert = TLSConfig(root_certificates=ca.cert_pem.bytes(), server_name="localhost")
        with (
            Client.connect(running.target, options=ClientOptions(tls=no_client_cert)) as client,
            pytest.raises(UnavailableError),
        ):
            client.get_installation("inst-3")
