"""The webhook path reads an installation by its URL's token through a cache
(server/core/_installations.py, ``by_webhook_token``): as fresh as the send path's (``cache_ttl_s``)
and forgotten at once when the installation changes through this replica — on a real SQLite
store, whose token lookups are counted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.core._catalog import IntegrationCatalog
from server.core._installations import InstallationDirectory
from server.security.secrets import SecretBox, hash_token
from server.store import InstallationRecord
from server.store.sqlite import SqliteStore

DEFINITION = {
    "id": "acme-sms",
    "name": "Acme",
    "class": "sms",
    "properties": ["API key"],
    "auth": {"type": "Bearer", "token": "$API key$"},
    "API": {
        "SendMessage": {
            "request_method": "POST",
            "request_url": "https://api.acme.example/messages",
            "request_content_type": "application/json",
            "request_parameters": {"to": "$to$", "text": "$content$"},
            "response_map": {"id": "$messageid$"},
        }
    },
}


class CountingStore(SqliteStore):
    """The real store, counting its token lookups."""

    lookups = 0

    async def find_installation_by_token_hash(
        self, integration_id: str, token_hash: str
    ) -> InstallationRecord | None:
        self.lookups += 1
        return await super().find_installation_by_token_hash(integration_id, token_hash)


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[tuple[InstallationDirectory, CountingStore]]:
    store = CountingStore(tmp_path / "data")
    await store.start()
    catalog = IntegrationCatalog(store)
    await catalog.register(json.dumps(DEFINITION))
    box = SecretBox.from_file(tmp_path / "secret.key")
    yield (
        InstallationDirectory(
            store=store, catalog=catalog, secret_box=box, public_url="http://127.0.0.1:0",
            cache_ttl_s=60.0,
        ),
        store,
    )  # fmt: skip
    await store.aclose()


def _token(directory: InstallationDirectory, record: InstallationRecord) -> str:
    return hash_token(directory.webhook_url(record).rsplit("/", 1)[1])


async def test_a_token_is_read_once_while_fresh_and_again_after_a_change(
    directory: tuple[InstallationDirectory, CountingStore],
) -> None:
    installations, store = directory
    record = await installations.enable(
        org_id="org-1",
        integration_id="acme-sms",
        properties={"API key": "k-123"},
        numbers=[],
        default_region=None,
    )
    token_hash = _token(installations, record)
    for _ in range(3):
        found = await installations.by_webhook_token("acme-sms", token_hash)
        assert found is not None and found.id == record.id and found.enabled
    assert store.lookups == 1

    await installations.disable(record.id)
    found = await installations.by_webhook_token("acme-sms", token_hash)
    assert found is not None and not found.enabled  # read again at once: the change is seen
    assert store.lookups == 2


async def test_an_unknown_token_is_not_kept(
    directory: tuple[InstallationDirectory, CountingStore],
) -> None:
    installations, store = directory
    for _ in range(2):
        assert await installations.by_webhook_token("acme-sms", hash_token("nobody")) is None
    assert store.lookups == 2
