"""(ext) The cache of senders' names (docs/format.md, "Contact names"): a name found names the
sender's later messages until it expires, a miss is asked again only after a while, one lookup
per sender at a time and a bounded number at once, and the webhook's events are never held."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, cast

import pytest
from test_contact_lookup import with_lookup

from server.core import ContactNames, ProviderAttempt
from server.core._catalog import LoadedIntegration
from server.core._installations import InstallationDirectory
from server.core.ingest import _contact_names
from server.core.send import AttemptFailed
from server.engine import EventType, InboundEvent, RequestTemplate, Value, load_definition
from server.errors import GatewayError
from server.outbound import ProviderResponse
from server.store import InstallationRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Directory:
    def property_values(self, record: InstallationRecord) -> dict[str, str]:
        return {"API key": "k3y"}

    def webhook_url(self, record: InstallationRecord) -> str:
        return "https://gw.example/webhooks/x/t"


class _Attempt:
    """Answers each lookup with ``answer`` (a profile, or an error to raise) once ``gate`` opens."""

    def __init__(self, answer: dict[str, Any] | GatewayError) -> None:
        self.answer = answer
        self.calls: list[Mapping[str, Value]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def bearer(self, installation: InstallationRecord, definition: Any) -> str | None:
        return None

    async def call(
        self, template: RequestTemplate, variables: Mapping[str, Value], target: Any, bearer: Any
    ) -> tuple[ProviderResponse, str | None, int]:
        self.calls.append(variables)
        await self.gate.wait()
        if isinstance(self.answer, GatewayError):
            raise AttemptFailed(self.answer, 1)
        body = json.dumps(self.answer).encode()
        response = ProviderResponse(
            status=200, headers={"content-type": "application/json"}, body=body, elapsed_s=0.01
        )
        return response, None, 1


def _installation(id: str = "inst-1") -> InstallationRecord:
    return InstallationRecord(
        id=id,
        org_id="org-1",
        integration_id="x",
        properties={},
        numbers=(),
        default_region=None,
        enabled=True,
        webhook_token_hash="h",
        subscription_state="not_required",
        subscription_error=None,
        created_at=NOW,
        updated_at=NOW,
    )


def _integration(doc: dict[str, Any] | None = None) -> LoadedIntegration:
    text = json.dumps(doc if doc is not None else with_lookup())
    return LoadedIntegration(
        id="x", version=1, definition=load_definition(text), definition_json=text, created_at=NOW
    )


def _event(sender: str = "psid-1", **changes: Any) -> InboundEvent:
    values: dict[str, Any] = {
        "type": EventType.MESSAGE,
        "model": 0,
        "event_key": "m",
        "payload_pointer": "",
        "from_number": sender,
        "to_number": "page-1",
        "text": "hi",
        "media_urls": (),
        "provider_message_id": "mid.1",
        "status": None,
        "error": None,
        "captures": {},
        **changes,
    }
    return InboundEvent(**values)


def _names(attempt: _Attempt, clock: _Clock) -> ContactNames:
    return ContactNames(
        installations=cast(InstallationDirectory, _Directory()),
        attempt=cast(ProviderAttempt, attempt),
        clock=clock,
    )


PROFILE = {"first_name": "Peter", "last_name": "Chang", "id": "psid-1"}


async def test_a_name_found_names_later_messages_until_it_expires() -> None:
    attempt, clock = _Attempt(PROFILE), _Clock()
    names = _names(attempt, clock)
    installation, integration = _installation(), _integration()

    first = names.named(_event(), installation, integration)
    assert first.fields == {}  # never held: the first message goes as it came
    await names.idle()
    assert names.named(_event(), installation, integration).fields == {
        "contact_name": "Peter Chang"
    }
    assert [dict(c) for c in attempt.calls] == [
        {
            "API key": "k3y",
            "from": "psid-1",
            "to": "page-1",
            "webhook_url": "https://gw.example/webhooks/x/t",
        }
    ]
    # Another installation's sender of the same id is another person.
    names.named(_event(), _installation("inst-2"), integration)
    await names.idle()
    assert len(attempt.calls) == 2

    clock.now += _contact_names.TTL_S + 1
    assert names.named(_event(), installation, integration).fields == {}
    await names.idle()
    assert len(attempt.calls) == 3


async def test_one_lookup_per_sender_at_a_time_and_a_bounded_number_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_contact_names, "MAX_IN_FLIGHT", 2)
    attempt, clock = _Attempt(PROFILE), _Clock()
    attempt.gate.clear()
    names = _names(attempt, clock)
    installation, integration = _installation(), _integration()
    for sender in ("a", "a", "b", "c", "a"):
        names.named(_event(sender), installation, integration)
    await asyncio.sleep(0)
    assert [c["from"] for c in attempt.calls] == ["a", "b"]  # "c" waits for its next message
    attempt.gate.set()
    await names.idle()
    names.named(_event("c"), installation, integration)
    await names.idle()
    assert [c["from"] for c in attempt.calls] == ["a", "b", "c"]


async def test_a_failed_lookup_is_asked_again_only_after_a_while() -> None:
    failed = GatewayError("no answer in time", reason="PROVIDER_UNAVAILABLE")
    attempt, clock = _Attempt(failed), _Clock()
    names = _names(attempt, clock)
    installation, integration = _installation(), _integration()
    for _ in range(3):
        assert names.named(_event(), installation, integration).fields == {}
        await names.idle()
    assert len(attempt.calls) == 1
    clock.now += _contact_names.RETRY_AFTER_S + 1
    attempt.answer = PROFILE
    names.named(_event(), installation, integration)
    await names.idle()
    assert names.named(_event(), installation, integration).fields == {
        "contact_name": "Peter Chang"
    }


async def test_what_asks_nothing() -> None:
    attempt, clock = _Attempt(PROFILE), _Clock()
    names = _names(attempt, clock)
    installation = _installation()
    named = MappingProxyType({"contact_name": "Pete"})
    events = [
        _event(fields=named),  # the payload named the sender
        _event(type=EventType.MESSAGE_READ),  # not a message
        _event(from_number=None),  # no sender
    ]
    for event in events:
        assert names.named(event, installation, _integration()) is event
    without = with_lookup()
    del without["API"]["LookupContact"]
    assert names.named(_event(), installation, _integration(without)).fields == {}
    await names.idle()
    assert attempt.calls == []


async def test_closing_cancels_the_lookups_under_way_and_starts_none() -> None:
    attempt, clock = _Attempt(PROFILE), _Clock()
    attempt.gate.clear()
    names = _names(attempt, clock)
    installation, integration = _installation(), _integration()
    names.named(_event("a"), installation, integration)
    await asyncio.sleep(0)
    await names.aclose()
    names.named(_event("b"), installation, integration)
    await names.idle()
    assert [c["from"] for c in attempt.calls] == ["a"]


async def test_the_lookup_of_the_installations_variant() -> None:
    doc = with_lookup()
    lookup = doc["API"].pop("LookupContact")
    doc["properties"] = [*doc["properties"], {"name": "Names", "options": ["off", "on"]}]
    doc["variants"] = {"Names": {"on": {"API": {"LookupContact": lookup}}}}
    attempt, clock = _Attempt(PROFILE), _Clock()
    names = _names(attempt, clock)
    integration = _integration(doc)
    off = replace(_installation("off"), properties={"Names": "off"})
    on = replace(_installation("on"), properties={"Names": "on"})
    names.named(_event(), off, integration)
    names.named(_event(), on, integration)
    await names.idle()
    assert len(attempt.calls) == 1
    assert names.named(_event(), on, integration).fields == {"contact_name": "Peter Chang"}
