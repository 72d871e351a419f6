"""Every definition in integrations/ against its provider's documented API, through the runner
``msgbridge test`` uses (client/_offline_cases.py, client/_live_cases.py): one way to prove a
definition (docs/format.md, "Proving a definition").

For each ``integrations/<provider>.json`` (a new file without fixtures fails here) and each case
of its set in ``tests/fixtures/providers/<provider>/`` (taken from the provider's documentation):

- offline, through the engine and the send, ingest and Subscribe paths' pure functions — the
  rendered request(s), the verdict on the documented answer, the events of a signed webhook body;
- live, through a gateway of its own (``build_server``, the webhook sidecar) with the file
  registered unchanged behind a stand-in for the provider's host, the fake provider and real
  sockets:

- each ``send/*.json``: the exact request the provider receives (method, path, query, headers,
  parsed body) — or the requests, in order, when ``expect`` and ``answer`` are lists (a send of
  several requests) — and its documented answer mapped to the reply's provider message id (or
  ids) — or, with ``expect_error``, to the gRPC code, reason and metadata the caller gets and
  (live) the message recorded FAILED with that reason;
- each ``webhooks/*.json``: the documented body, signed with the installation's test secrets and
  posted (live: through the real sidecar) to the installation's webhook URL, yields exactly the
  expected events (and, with ``expect_answer``, gets exactly that HTTP answer);
- each ``subscribe/*.json``: enabling makes exactly the documented requests that register the
  webhook URL, and disabling the ``unsubscribe`` ones — offline, each step rendered and answered
  by the functions the gateway's Subscribe runs (``next_step``, ``judge_step_answer``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from client._cases import CaseResult, load_case_set
from client._live_cases import run_cases_live
from client._offline_cases import run_offline
from server.engine import load_definition

from ..service.conftest import TEST_DATABASE, _create_database, _database_url, _drop_database

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"
FIXTURES = ROOT / "tests" / "fixtures" / "providers"
NOT_DEFINITIONS = {"schema.json"}

PROVIDERS = sorted(p.stem for p in INTEGRATIONS.glob("*.json") if p.name not in NOT_DEFINITIONS)


def test_every_definition_has_fixtures() -> None:
    assert PROVIDERS, "integrations/ holds no definitions"
    missing = []
    for provider in PROVIDERS:
        folder = FIXTURES / provider
        if not (folder / "install.json").exists():
            missing.append(f"{provider}: install.json")
        if not list((folder / "send").glob("*.json")):
            missing.append(f"{provider}: send/*.json")
        if not list((folder / "webhooks").glob("*.json")):
            missing.append(f"{provider}: webhooks/*.json")
    assert not missing, "fixtures missing: " + ", ".join(missing)


def _cases() -> list[Any]:
    return [
        pytest.param(provider, path, id=f"{provider}/{path.parent.name}/{path.stem}")
        for provider in PROVIDERS
        for kind in ("send", "webhooks", "subscribe")
        for path in sorted((FIXTURES / provider / kind).glob("*.json"))
    ]


def _definition(provider: str) -> tuple[str, dict[str, Any]]:
    text = (INTEGRATIONS / f"{provider}.json").read_text(encoding="utf-8")
    return text, json.loads(text)


def _explained(result: CaseResult) -> str:
    return "\n".join([result.name, *result.problems])


@pytest.mark.parametrize(("provider", "fixture"), _cases())
def test_case_offline(provider: str, fixture: Path) -> None:
    text, doc = _definition(provider)
    [result] = run_offline(doc, load_definition(text.encode()), load_case_set(fixture))
    assert result.passed, _explained(result)


@pytest.mark.parametrize(("provider", "fixture"), _cases())
async def test_case_live(provider: str, fixture: Path) -> None:
    text, doc = _definition(provider)
    database = await _create_database() if TEST_DATABASE == "postgres" else None
    try:
        [result] = await run_cases_live(
            text,
            doc,
            load_definition(text.encode()),
            load_case_set(fixture),
            settings=(
                (lambda s: replace(s, database_url=_database_url(database))) if database else None
            ),
        )
    finally:
        if database is not None:
            await _drop_database(database)
    assert result.passed, _explained(result)
