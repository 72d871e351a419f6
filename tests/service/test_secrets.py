"""Secrets at rest: sealed in the store, opened with a key list, sealed again under a new key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider
from server.security.secrets import SecretBox, is_sealed

from .conftest import GatewayFactory, definition, stop


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_a_rotated_key_opens_old_secrets_and_seals_them_again_on_write(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    old_key = _new_key()
    key_file.write_text(old_key + "\n")
    first = await start_gateway(secret_key_file=key_file)
    await first.register(definition(provider.url))
    installation = await first.enable("acme-sms", properties={"API key": "rotate-me-123"})
    record = await first.server.store.get_installation(installation.id)
    assert record is not None
    sealed = record.properties["API key"]
    assert is_sealed(sealed) and "rotate-me-123" not in sealed
    await stop(first)

    # The operator puts a new key first and keeps the old one below it.
    key_file.write_text(_new_key() + "\n" + old_key + "\n")
    second = await start_gateway(secret_key_file=key_file)
    await second.send()
    assert dict(provider.state.requests[-1].headers)["Authorization"] == "Bearer rotate-me-123"
    box = SecretBox.from_file(key_file, create=False)
    record = await second.server.store.get_installation(installation.id)
    assert record is not None and box.needs_reencryption(record.properties["API key"])
    await second.stub.UpdateInstallation(
        gateway_pb2.UpdateInstallationRequest(installation_id=installation.id, default_region="US")
    )
    record = await second.server.store.get_installation(installation.id)
    assert record is not None
    assert all(
        not box.needs_reencryption(value)
        for value in record.properties.values()
        if is_sealed(value)
    )
    await second.send()
    assert dict(provider.state.requests[-1].headers)["Authorization"] == "Bearer rotate-me-123"
