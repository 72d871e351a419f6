"""The ``store`` fixture: every test in this folder runs against each Store implementation.

``store_backend`` makes new, unopened stores over one storage place (so a test can close a store
and open another on the same data). A PostgreSQL backend is added here as another ``params``
entry (marked ``postgres``) when that implementation exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.store import SqliteStore, Store


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreBackend:
    name: str
    make: Callable[[], Store]


def _sqlite(tmp_path: Path) -> StoreBackend:
    return StoreBackend(name="sqlite", make=lambda: SqliteStore(tmp_path / "data"))


_BACKENDS: dict[str, Callable[[Path], StoreBackend]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(_BACKENDS))
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    return _BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[Store]:
    opened = store_backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
