from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.demo import RunningFakeProvider, start_fake_provider

from ..service.conftest import provider, start_gateway  # noqa: F401 - shared fixtures


@pytest.fixture
async def provider_fake() -> AsyncIterator[RunningFakeProvider]:
    fake = await start_fake_provider()
    try:
        yield fake
    finally:
        await fake.aclose()
