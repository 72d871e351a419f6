"""``msgbridge send-file --file``, ``media upload`` and ``media get`` against a real gateway on
127.0.0.1 and the fake provider (docs/media.md): the CLI runs in a thread, the service on the
test's event loop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.cli import main
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory
from .test_media import PNG, local, media_definition, media_gateway, media_store, moto_s3  # noqa: F401

SEND = ("send-file", "--org", "org-1", "--from", "+15550001111", "--to", "+15557654321")


def run_cli(*arguments: str) -> Any:
    """``msgbridge …`` in a thread (the service runs on this test's event loop)."""
    return asyncio.to_thread(main, list(arguments))


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSGBRIDGE_TARGET", raising=False)
    monkeypatch.delenv("MSGBRIDGE_TOKEN", raising=False)


def target(gateway: Gateway) -> tuple[str, str]:
    return ("--target", f"127.0.0.1:{gateway.port}")


async def test_send_file_uploads_the_file_and_sends_it_by_its_id(
    media_gateway: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await media_gateway.register(media_definition(provider.url))
    await media_gateway.enable("acme-sms")
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)

    code = await run_cli(*SEND, "--file", str(photo), "--text", "look", *target(media_gateway))

    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    (line,) = out.splitlines()
    assert line.startswith("Sent ") and "through acme-sms" in line  # as `send` prints it
    (sent,) = provider.state.requests_to("/messages")
    body = json.loads(sent.body)
    assert body["caption"] == "look"
    media_id = body["media_url"].split("/media/", 1)[1].split("?", 1)[0]

    # The provider's fetch of the signed URL, then GetMedia through the CLI, both give the file.
    async with (
        aiohttp.ClientSession() as http,
        http.get(local(media_gateway, body["media_url"])) as response,
    ):
        assert (response.status, await response.read()) == (200, PNG)
    saved = tmp_path / "saved.png"
    get = ("media", "get", media_id, "--org", "org-1", *target(media_gateway))
    assert await run_cli(*get, "-o", str(saved), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["mediaId"], shown["contentType"], shown["size"]) == (
        media_id,
        "image/png",
        str(len(PNG)),  # int64 in the JSON mapping
    )
    assert saved.read_bytes() == PNG

    # --json with --file prints the send's reply, as `send --json` does.
    assert await run_cli(*SEND, "--file", str(photo), "--json", *target(media_gateway)) == 0
    assert json.loads(capsys.readouterr().out)["integrationId"] == "acme-sms"
    assert (
        json.loads(provider.state.requests_to("/messages")[1].body)["media_url"]
        != (body["media_url"])
    )  # a second upload, a second file


async def test_media_upload_then_send_and_get_to_stdout_and_to_a_file(
    media_gateway: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)
    connect = target(media_gateway)

    assert await run_cli("media", "upload", str(photo), "--org", "org-1", *connect) == 0
    out = capsysbinary.readouterr().out.decode()
    lines = out.splitlines()
    assert lines[0] == f"Uploaded {photo}"
    fields = dict(line.split(":", 1) for line in lines[1:])
    assert fields["type"].strip() == "image/png"
    assert fields["size"].strip() == f"{len(PNG)} bytes"
    media_id = fields["media id"].strip()

    assert await run_cli("media", "get", media_id, *connect) == 0  # no -o: the bytes on stdout
    assert capsysbinary.readouterr().out == PNG

    # Sent by its id.
    await media_gateway.register(media_definition(provider.url))
    await media_gateway.enable("acme-sms")
    assert await run_cli(*SEND, "--media-id", media_id, "--text", "again", *connect) == 0
    assert capsysbinary.readouterr().out.decode().startswith("Sent ")
    (sent,) = provider.state.requests_to("/messages")
    assert f"/media/{media_id}?" in json.loads(sent.body)["media_url"]

    saved = tmp_path / "copy.png"
    assert await run_cli("media", "get", media_id, "-o", str(saved), *connect) == 0
    assert capsysbinary.readouterr().out.decode().startswith(f"Saved {media_id} to {saved}")
    assert saved.read_bytes() == PNG

    # An existing file is kept unless --force.
    saved.write_bytes(b"mine")
    assert await run_cli("media", "get", media_id, "-o", str(saved), *connect) == 2
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert b"exists (--force to overwrite it)" in captured.err
    assert saved.read_bytes() == b"mine"
    assert await run_cli("media", "get", media_id, "-o", str(saved), "--force", *connect) == 0
    assert saved.read_bytes() == PNG

    # Another organisation's file is not found; nothing is written.
    missing = tmp_path / "other.png"
    get_other = ("media", "get", media_id, "--org", "org-2", "-o", str(missing), *connect)
    assert await run_cli(*get_other) == 1
    assert capsysbinary.readouterr().err.decode().startswith("NOT_FOUND: MEDIA_NOT_FOUND: ")
    assert not missing.exists()


async def test_the_errors_are_the_gateways_reasons_or_usage_errors(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    moto_s3: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = await start_gateway(media_max_item_bytes=1024, **media_store(moto_s3, monkeypatch))
    await gateway.register(media_definition(provider.url))
    await gateway.enable("acme-sms")
    connect = target(gateway)
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)  # larger than 1024 bytes

    assert await run_cli(*SEND, "--file", str(photo), *connect) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("INVALID_ARGUMENT: MEDIA_TOO_LARGE: ")
    assert await run_cli("media", "upload", str(photo), "--org", "org-1", *connect) == 1
    assert capsys.readouterr().err.startswith("INVALID_ARGUMENT: MEDIA_TOO_LARGE: ")
    assert provider.state.requests_to("/messages") == []

    # A file that is not there, --url with --file: usage errors (exit 2), nothing sent.
    missing = str(tmp_path / "missing.png")
    assert await run_cli(*SEND, "--file", missing, *connect) == 2
    assert f"cannot read {missing}: No such file or directory" in capsys.readouterr().err
    assert await run_cli("media", "upload", missing, "--org", "org-1", *connect) == 2
    assert f"cannot read {missing}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        await run_cli(*SEND, "--file", str(photo), "--url", "https://x.example/a.png", *connect)
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        await run_cli(*SEND, *connect)  # one of them is required
    assert "one of the arguments --url --file --media-id is required" in capsys.readouterr().err
    assert await run_cli("media", "get", "some-id", "--json", *connect) == 2
    assert "give -o FILE" in capsys.readouterr().err
    assert provider.state.requests_to("/messages") == []
