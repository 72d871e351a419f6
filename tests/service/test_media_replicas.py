"""Two replicas on one PostgreSQL database sharing one S3-compatible object store (moto's server
on 127.0.0.1) and one secret key file: a file fetched by either is served by both, at the URLs
either signs (docs/media.md, "Storage")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider
from tests.media_support import MotoS3, start_moto_s3

from .conftest import Gateway, GatewayFactory, _create_database, _database_url, _drop_database
from .test_inbound import Subscriber, hook_path, post
from .test_media import JPEG, PNG, local, media_definition, mms

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    server = start_moto_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    name = await _create_database()
    try:
        yield _database_url(name)
    finally:
        await _drop_database(name)


@pytest.fixture
async def replicas(
    start_gateway: GatewayFactory,
    moto: MotoS3,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Gateway, Gateway]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_access_key)
    shared: dict[str, Any] = {
        "database_url": database_url,
        "secret_key_file": tmp_path / "secret.key",
        "media_store": f"s3://{moto.new_bucket()}/media",
        "media_s3_endpoint": moto.endpoint_url,
        "sidecar": True,
        "media_fetch": True,
        "media_fetch_timeout_s": 2.0,
    }
    first: Gateway = await start_gateway(data_dir=tmp_path / "a", **shared)
    second: Gateway = await start_gateway(data_dir=tmp_path / "b", **shared)
    return first, second


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_file_kept_by_one_replica_is_served_by_the_other(
    replicas: tuple[Gateway, Gateway], provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    a, b = replicas
    await a.register(media_definition(provider.url, auth="none"))
    installation = await a.enable("acme-sms")
    provider.state.script("/media/1", Answer(body=PNG))
    subscriber = Subscriber(b, gateway_pb2.StreamEventsRequest(earliest=True))
    try:
        assert (await post(http, a, hook_path(installation), mms(provider.url + "/media/1")))[
            0
        ] == 200
        (event,) = await subscriber.wait_for(1, within_s=20)
    finally:
        await subscriber.close()
    (item,) = event.media
    assert item.content_type == "image/png" and not item.error
    for replica in (a, b):
        async with http.get(local(replica, item.url)) as response:
            assert (response.status, await response.read()) == (200, PNG)
    body = bytearray()
    async for part in b.stub.GetMedia(
        gateway_pb2.GetMediaRequest(org_id="org-1", media_id=item.media_id)
    ):
        body += part.chunk
    assert bytes(body) == PNG


async def test_an_upload_to_one_replica_is_sent_through_the_other(
    replicas: tuple[Gateway, Gateway], provider: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    a, b = replicas
    await a.register(media_definition(provider.url, auth="none"))
    await a.enable("acme-sms")

    async def parts() -> AsyncIterator[gateway_pb2.UploadMediaRequest]:
        yield gateway_pb2.UploadMediaRequest(
            start=gateway_pb2.UploadMediaRequest.Start(org_id="org-1", filename="photo.jpg")
        )
        yield gateway_pb2.UploadMediaRequest(chunk=JPEG)

    info = await b.stub.UploadMedia(parts())
    request = gateway_pb2.SendFileRequest(org_id="org-1", to="+15557654321", media_id=info.media_id)
    setattr(request, "from", "+15550001111")
    reply = await a.stub.SendFile(request)
    assert reply.state == gateway_pb2.Message.SENT
    (sent,) = provider.state.requests_to("/messages")
    url = json.loads(sent.body)["media_url"]
    for replica in (b, a):
        async with http.get(local(replica, url)) as response:
            assert (response.status, await response.read()) == (200, JPEG)
