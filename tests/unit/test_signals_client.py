"""(ext) The conversation signals in the typed clients and the CLI (docs/format.md, "Conversation
signals"): ``send_typing`` / ``mark_read`` and ``msgbridge typing`` / ``msgbridge mark-read``
carry the conversation and the provider's message id; NOT_SUPPORTED is a FailedPreconditionError
and a plain line on stderr."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from _fake_gateway import NOT_SUPPORTED, RunningGateway, running_gateway

from client import AsyncClient, Client, ClientOptions, FailedPreconditionError, sender
from client.cli import main


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    with running_gateway() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway.fake.reset()
    monkeypatch.delenv("MSGBRIDGE_TARGET", raising=False)
    monkeypatch.delenv("MSGBRIDGE_TOKEN", raising=False)


@pytest.fixture
async def async_client(gateway: RunningGateway) -> AsyncIterator[AsyncClient]:
    options = ClientOptions(timeout=10)
    async with await AsyncClient.connect(gateway.target, options=options) as client:
        yield client


@pytest.fixture
def sync_client(gateway: RunningGateway) -> Iterator[Client]:
    with Client.connect(gateway.target, options=ClientOptions(timeout=10)) as client:
        yield client


async def test_async_send_typing_carries_the_conversation(
    gateway: RunningGateway, async_client: AsyncClient
) -> None:
    reply = await async_client.send_typing(
        org_id="acme", from_="+15550001111", to="chat-7", provider_message_id="m-1", extension="101"
    )
    (request,) = gateway.fake.requests("SendTyping")
    assert sender(request) == "+15550001111"
    assert (request.org_id, request.to, request.provider_message_id) == ("acme", "chat-7", "m-1")
    assert request.extension == "101"
    assert (reply.installation_id, reply.provider_status) == ("inst-1", 200)


def test_sync_mark_read_and_not_supported(gateway: RunningGateway, sync_client: Client) -> None:
    sync_client.mark_read(
        org_id="acme", from_="+15550001111", to="chat-7", provider_message_id="m-2"
    )
    (request,) = gateway.fake.requests("MarkRead")
    assert (sender(request), request.to, request.provider_message_id) == (
        "+15550001111",
        "chat-7",
        "m-2",
    )
    gateway.fake.fail("MarkRead", NOT_SUPPORTED)
    with pytest.raises(FailedPreconditionError) as refused:
        sync_client.mark_read(
            org_id="acme", from_="+15550001111", to="chat-7", provider_message_id="m-2"
        )
    assert refused.value.reason == "NOT_SUPPORTED"


CONVERSATION = ("--org", "acme", "--from", "+15550001111", "--to", "chat-7")


def _run(
    gateway: RunningGateway, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    code = main([*argv, "--target", gateway.target])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_typing_and_mark_read(
    gateway: RunningGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(gateway, capsys, "typing", *CONVERSATION)
    assert code == 0
    assert out == "Typing shown through acme (installation inst-1): HTTP 200\n"
    (typing,) = gateway.fake.requests("SendTyping")
    assert typing.provider_message_id == ""

    code, out, _ = _run(
        gateway, capsys, "mark-read", *CONVERSATION, "--message-id", "m-3", "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "installationId": "inst-1",
        "integrationId": "acme",
        "providerStatus": 200,
    }
    (read,) = gateway.fake.requests("MarkRead")
    assert (sender(read), read.to, read.provider_message_id) == ("+15550001111", "chat-7", "m-3")


def test_cli_mark_read_needs_the_message_id_and_reports_not_supported(
    gateway: RunningGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["mark-read", *CONVERSATION, "--target", gateway.target])
    assert usage.value.code == 2
    capsys.readouterr()
    gateway.fake.fail("MarkRead", NOT_SUPPORTED)
    code, out, err = _run(gateway, capsys, "mark-read", *CONVERSATION, "--message-id", "m-3")
    assert (code, out) == (1, "")
    assert err.startswith("FAILED_PRECONDITION: NOT_SUPPORTED: ")
