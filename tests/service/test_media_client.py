"""The typed clients' files (docs/media.md) against a real gateway on 127.0.0.1: upload from
bytes, a path, a binary file and chunks of any size, GetMedia whole and to a file, SendFile with
the media id, and the errors — with files under the data directory or on moto's S3, as
tests/service/test_media.py."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from client import AsyncClient, Client, InvalidArgumentError, MsgbridgeError, NotFoundError
from client._media import CHUNK_BYTES, source_chunks
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory
from .test_media import PNG, media_definition, media_gateway, media_store, moto_s3  # noqa: F401

# Two and a half chunks: a PNG by its first bytes.
BIG_PNG = PNG + bytes(2 * CHUNK_BYTES + CHUNK_BYTES // 2 - len(PNG))


def target(gateway: Gateway) -> str:
    return f"127.0.0.1:{gateway.port}"


class RecordingFile(io.BytesIO):
    """A binary file that remembers the sizes it was asked to read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return super().read(size)


def test_a_path_is_read_a_chunk_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(BIG_PNG)
    with source_chunks(path) as chunks:
        sizes = [len(chunk) for chunk in chunks]
    assert sizes == [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES // 2]


async def test_async_uploads_from_every_kind_of_source_come_back_whole(
    media_gateway: Gateway,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(BIG_PNG)
    file = RecordingFile(BIG_PNG)

    async def pieces() -> AsyncIterator[bytes]:
        yield BIG_PNG[:10]
        yield BIG_PNG[10:]  # more than two chunks at once: split before it is sent

    async with await AsyncClient.connect(target(media_gateway)) as client:
        infos = [
            await client.upload_media("org-1", BIG_PNG, filename="bytes.png"),
            await client.upload_media("org-1", path),
            await client.upload_media("org-1", file),
            await client.upload_media("org-1", pieces()),
            await client.upload_media(
                "org-1", [BIG_PNG[: CHUNK_BYTES + 1], BIG_PNG[CHUNK_BYTES + 1 :]]
            ),
        ]
        assert file.sizes and set(file.sizes) == {CHUNK_BYTES}
        digest = hashlib.sha256(BIG_PNG).hexdigest()
        for info in infos:
            assert (info.content_type, info.size, info.sha256) == (
                "image/png",
                len(BIG_PNG),
                digest,
            )
            assert info.url and info.media_id
        assert len({info.media_id for info in infos}) == len(infos)

        info, body = await client.get_media("org-1", infos[1].media_id)
        assert (info.media_id, body) == (infos[1].media_id, BIG_PNG)
        saved = tmp_path / "out" / "copy.png"
        saved.parent.mkdir()
        info = await client.download_media("org-1", infos[0].media_id, saved)
        assert (info.size, saved.read_bytes()) == (len(BIG_PNG), BIG_PNG)

        # An existing file is refused before anything is fetched, and left as it was…
        saved.write_bytes(b"mine")
        with pytest.raises(FileExistsError):
            await client.download_media("org-1", infos[0].media_id, saved)
        assert saved.read_bytes() == b"mine"
        # …unless overwritten; a failed download leaves nothing behind, the old file whole.
        with pytest.raises(NotFoundError):
            await client.download_media("org-1", "no-such-file", saved, overwrite=True)
        assert saved.read_bytes() == b"mine"
        assert sorted(p.name for p in saved.parent.iterdir()) == ["copy.png"]
        await client.download_media("org-1", infos[0].media_id, saved, overwrite=True)
        assert saved.read_bytes() == BIG_PNG


async def test_the_sync_client_uploads_sends_and_reads_back(
    media_gateway: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    tmp_path: Path,
) -> None:
    await media_gateway.register(media_definition(provider.url))
    await media_gateway.enable("acme-sms")
    path = tmp_path / "photo.png"
    path.write_bytes(PNG)

    def run() -> tuple[str, str, bytes, bytes]:
        with Client.connect(target(media_gateway)) as client:
            info = client.upload_media("org-1", path, integration_id="acme-sms")
            reply = client.send_file(
                org_id="org-1",
                from_="+15550001111",
                to="+15557654321",
                media_id=info.media_id,
                text="look",
            )
            _, body = client.get_media("org-1", info.media_id)
            sink = io.BytesIO()
            client.download_media("", info.media_id, sink)  # "": any of the caller's orgs
            return info.media_id, reply.message_id, body, sink.getvalue()

    media_id, message_id, body, streamed = await asyncio.to_thread(run)
    assert message_id and body == streamed == PNG
    (sent,) = provider.state.requests_to("/messages")
    sent_body = json.loads(sent.body)
    assert sent_body["caption"] == "look"
    assert f"/media/{media_id}?" in sent_body["media_url"]


async def test_a_file_over_the_cap_is_refused_while_it_is_sent(
    start_gateway: GatewayFactory,
    moto_s3: object,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    gateway = await start_gateway(
        media_max_item_bytes=4096,
        **media_store(moto_s3, monkeypatch),  # type: ignore[arg-type]
    )
    path = tmp_path / "big.png"
    path.write_bytes(BIG_PNG)
    async with await AsyncClient.connect(target(gateway)) as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.upload_media("org-1", path)
        assert caught.value.reason == "MEDIA_TOO_LARGE"
        with pytest.raises(InvalidArgumentError) as caught:
            await client.upload_media("org-1", b"")
        assert caught.value.reason == "MEDIA_EMPTY"

    def sync_upload() -> MsgbridgeError:
        with Client.connect(target(gateway)) as client:
            with pytest.raises(InvalidArgumentError) as caught:
                client.upload_media("org-1", BIG_PNG)
            return caught.value

    assert (await asyncio.to_thread(sync_upload)).reason == "MEDIA_TOO_LARGE"


class SourceFailed(Exception):
    pass


def failing() -> Iterator[bytes]:
    yield PNG
    raise SourceFailed("the disk went away")


async def test_a_source_that_fails_cancels_the_upload_with_its_own_error(
    media_gateway: Gateway,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with await AsyncClient.connect(target(media_gateway)) as client:
        with pytest.raises(SourceFailed):
            await client.upload_media("org-1", failing())
        with pytest.raises(FileNotFoundError):
            await client.upload_media("org-1", tmp_path / "missing.png")
        # The channel is as good as before.
        assert (await client.upload_media("org-1", PNG)).size == len(PNG)

    def sync_upload() -> None:
        with Client.connect(target(media_gateway)) as client:
            with pytest.raises(SourceFailed):
                client.upload_media("org-1", failing())
            with pytest.raises(FileNotFoundError):
                client.upload_media("org-1", tmp_path / "missing.png")
            assert client.upload_media("org-1", PNG).size == len(PNG)

    await asyncio.to_thread(sync_upload)


async def test_media_of_another_organisation_is_not_found(
    media_gateway: Gateway,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with await AsyncClient.connect(target(media_gateway)) as client:
        info = await client.upload_media("org-1", PNG)
        with pytest.raises(NotFoundError) as caught:
            await client.get_media("org-2", info.media_id)
        assert caught.value.reason == "MEDIA_NOT_FOUND"
        with pytest.raises(NotFoundError):
            await client.download_media("org-2", info.media_id, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
