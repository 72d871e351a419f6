"""Receipts correlated by our id and inbound messages without ``to`` (docs/format.md, "Receipts":
by our id; "Numbers and routing": without ``to``): the checker's rules, and the ingest path's
routing with a store that only answers look-ups."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from server.core import _numbers
from server.core.ingest import Ingestor, _held_receipts, _ingestor
from server.engine import WebhookRequest, check_definition, load_definition, match_webhook
from server.store import MessageState

ROOT = Path(__file__).resolve().parents[2]
KANNEL: dict[str, Any] = json.loads((ROOT / "integrations" / "kannel.json").read_text())


def problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p.pointer}: {p.message}" for p in check_definition(doc)]


def kannel() -> dict[str, Any]:
    return copy.deepcopy(KANNEL)


# -- msgbridge check ------------------------------------------------------------------------------


def test_a_definition_that_correlates_by_our_id_needs_no_response_map() -> None:
    assert problems(kannel()) == []


def test_without_our_id_in_the_send_the_missing_response_map_is_still_reported() -> None:
    doc = kannel()
    doc["API"]["SendMessage"]["request_parameters"]["dlr-url"] = "$webhook_url$?type=%d"
    assert problems(doc) == [
        "warning /API/SendMessage: SendMessage has no response_map, so the provider's message id "
        "is never captured and delivery reports cannot be matched to the message",
        *[
            f"warning /Webhook/{i}/request_parameters: this model captures $gateway_id$, but no "
            "SendMessage or SendFile request carries $gateway_id$ (in a callback URL or a field), "
            "so the provider cannot send it back and these receipts find no message by it"
            for i in range(1, 5)
        ],
    ]


def test_our_id_in_a_send_header_or_url_counts_as_carried() -> None:
    doc = kannel()
    request = doc["API"]["SendMessage"]
    request["request_parameters"]["dlr-url"] = "$webhook_url$?type=%d"
    request["request_url"] += "?ref=$gateway_id$"
    assert problems(doc) == []
    request["request_url"] = request["request_url"].split("?")[0]
    request["request_headers"] = {"X-Ref": "$gateway_id$"}
    assert problems(doc) == []


def test_our_id_in_a_response_map_is_not_carried() -> None:
    # A response_map reads the answer; it sends nothing (and gateway_id is no capture there).
    doc = kannel()
    request = doc["API"]["SendMessage"]
    request["request_parameters"]["dlr-url"] = "$webhook_url$"
    request["response_map"] = {"ref": "$messageid$"}
    assert "no SendMessage or SendFile request carries $gateway_id$" in "\n".join(problems(doc))


def test_a_receipt_may_capture_our_id_instead_of_the_provider_id() -> None:
    doc = kannel()
    doc["Webhook"][1]["request_parameters"]["id"] = "$gateway_id?$"  # optional: does not count
    assert problems(doc) == [
        'error /Webhook/1/request_parameters: a model of event_type "messageDelivered" must '
        "capture $messageid$; this one does not capture $messageid$ (an optional $x?$ capture "
        "does not count)"
    ]


def test_our_id_in_an_inbound_model_is_a_warning() -> None:
    doc = kannel()
    doc["Webhook"][0]["request_parameters"]["ref"] = "$gateway_id$"
    assert problems(doc) == [
        'warning /Webhook/0/request_parameters: a model of event_type "message" captures '
        "$gateway_id$, which only receipts use (to find the message we sent); it is ignored here"
    ]


def test_an_inbound_model_may_take_to_as_optional_but_must_name_it() -> None:
    doc = kannel()
    assert doc["Webhook"][0]["request_parameters"]["to"] == "$to?$"
    load_definition(json.dumps(doc).encode())
    del doc["Webhook"][0]["request_parameters"]["to"]
    assert problems(doc) == [
        'error /Webhook/0/request_parameters: a model of event_type "message" must capture '
        "$from$, $to$ and $content$ (or $text$); this one does not capture $to$ (an optional "
        "$x?$ capture does not count; $to?$ does, for a provider that may leave the receiving "
        "number out)"
    ]


def test_an_inbound_model_still_needs_from_and_its_text() -> None:
    doc = kannel()
    del doc["Webhook"][0]["request_parameters"]["from"]
    found = problems(doc)
    assert found[0] == (
        'error /Webhook/0/request_parameters: a model of event_type "message" must capture '
        "$from$, $to$ and $content$ (or $text$); this one does not capture $from$ (an optional "
        "$x?$ capture does not count)"
    )


# -- routing --------------------------------------------------------------------------------------

DEFINITION = load_definition(json.dumps(KANNEL).encode())
NOW = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


def _installation(id: str, *numbers: str) -> Any:
    return SimpleNamespace(
        id=id,
        org_id=f"org-{id}",
        default_region=None,
        numbers=tuple(SimpleNamespace(number=n, users=(f"u{n[-1]}",)) for n in numbers),
    )


def _message(
    id: str, installation: str, integration: str = "kannel", state: MessageState = MessageState.SENT
) -> Any:
    return SimpleNamespace(
        id=id,
        state=state,
        org_id=f"org-{installation}",
        installation_id=installation,
        integration_id=integration,
        from_number="+4790000000",
        to_number="+4791234567",
        metadata=MappingProxyType({"k": "v"}),
        provider_message_ids=(),
    )


class LookupStore:
    def __init__(self, *messages: Any, installations: tuple[Any, ...] = ()) -> None:
        self.messages = {m.id: m for m in messages}
        self.installations = installations
        self.asked: list[str] = []

    async def get_message(self, message_id: str) -> Any:
        self.asked.append(message_id)
        return self.messages.get(message_id)

    async def find_message_by_provider_id(self, integration_id: str, provider_id: str) -> Any:
        return None

    async def find_installation_by_number(self, integration_id: str, number: str) -> Any:
        return next(
            (i for i in self.installations if number in {n.number for n in i.numbers}), None
        )


async def _route(
    store: LookupStore,
    installation: Any,
    query: str,
    *,
    definition: Any = DEFINITION,
    body: bytes = b"",
) -> Any:
    ingestor = Ingestor(
        store=store,  # type: ignore[arg-type]
        catalog=None,  # type: ignore[arg-type]
        installations=None,  # type: ignore[arg-type]
        hub=None,  # type: ignore[arg-type]
        held_receipts=SimpleNamespace(wait=timedelta(seconds=10)),  # type: ignore[arg-type]
        oauth_callback=None,  # type: ignore[arg-type]
    )
    from urllib.parse import parse_qsl

    request = WebhookRequest(
        method="POST" if body else "GET",
        content_type="application/x-www-form-urlencoded" if body else None,
        body=body,
        query=tuple(parse_qsl(query)),
    )
    integration = SimpleNamespace(id="kannel", definition=definition)
    return await ingestor._route(
        integration, installation, match_webhook(definition, request), "r1", NOW
    )  # type: ignore[arg-type]


async def test_a_receipt_goes_to_the_message_our_id_names() -> None:
    a = _installation("a", "+4790000000")
    store = LookupStore(_message("m-1", "a"))
    routed = await _route(store, a, "kannel=dlr&type=1&id=m-1&answer=stat%3ADELIVRD")
    assert not routed.unroutable and routed.problems == [] and routed.held == []
    (event,) = routed.events
    assert (event.type, event.message_id, event.installation_id, event.org_id) == (
        "messageDelivered",
        "m-1",
        "a",
        "org-a",
    )
    assert (event.status, event.from_number, event.metadata) == (
        "stat:DELIVRD",
        "+4790000000",
        {"k": "v"},
    )
    (transition,) = routed.transitions
    assert transition.message_id == "m-1"


@pytest.mark.parametrize(
    ("message", "through", "owner"),
    [
        (_message("m-1", "b"), "a", "installation"),  # another installation's message
        (_message("m-1", "c", "jasmin"), "a", "installation"),  # another integration's
        (_message("m-1", "c", "jasmin"), None, "integration"),  # … through the integration URL
        (None, "a", "installation"),  # no such message
    ],
)
async def test_a_receipt_naming_a_message_that_is_not_ours_changes_nothing(
    message: Any, through: str | None, owner: str
) -> None:
    store = LookupStore(*([message] if message else []))
    installation = _installation(through, "+4790000000") if through else None
    routed = await _route(store, installation, "kannel=dlr&type=2&id=m-1&answer=x")
    assert routed.unroutable
    assert routed.events == [] and routed.transitions == [] and routed.held == []
    assert routed.problems == [
        f"a messageFailed receipt matched model 2 and names our message id 'm-1', which is no "
        f"message sent through this {owner}"
    ]


async def test_a_long_id_is_cut_in_the_reason() -> None:
    routed = await _route(LookupStore(), _installation("a"), "kannel=dlr&type=1&id=" + "x" * 500)
    (problem,) = routed.problems
    assert "'" + "x" * 80 + "…'" in problem and len(problem) < 250


async def test_a_blank_id_is_no_id() -> None:
    store = LookupStore()
    routed = await _route(store, _installation("a"), "kannel=dlr&type=1&id=+&answer=x")
    assert store.asked == []
    # As a receipt without any id through an installation's URL: produced for it, uncorrelated.
    (event,) = routed.events
    assert (event.message_id, event.installation_id) == ("", "a")


async def test_a_message_without_to_takes_the_only_number() -> None:
    routed = await _route(LookupStore(), _installation("a", "+4790000000"), "from=%2B4791&text=hi")
    (event,) = routed.events
    assert (event.to_number, event.users, event.installation_id) == ("+4790000000", ("u0",), "a")


async def test_a_message_without_to_to_an_installation_of_several_numbers_has_none() -> None:
    two = _installation("a", "+4790000000", "+4790000001")
    routed = await _route(LookupStore(), two, "from=%2B4791&text=hi")
    (event,) = routed.events
    assert (event.to_number, event.users, event.installation_id) == ("", (), "a")


async def test_a_message_without_to_through_the_integration_url_is_unroutable() -> None:
    a = _installation("a", "+4790000000")
    routed = await _route(LookupStore(installations=(a,)), None, "from=%2B4791&text=hi")
    assert routed.unroutable and routed.events == []
    (problem,) = routed.problems
    assert "carries no `to` number" in problem
    named = await _route(
        LookupStore(installations=(a,)), None, "from=%2B4791&to=%2B4790000000&text=hi"
    )
    assert [e.installation_id for e in named.events] == ["a"]


def test_our_id_is_the_first_of_a_list_and_never_blank() -> None:
    def event(value: object) -> Any:
        return SimpleNamespace(captures={} if value is None else {"gateway_id": value})

    assert _ingestor._our_id(event(("m-1", "m-2"))) == "m-1"
    assert _ingestor._our_id(event(" m-1 ")) == "m-1"
    assert _ingestor._our_id(event("  ")) is None
    assert _ingestor._our_id(event(())) is None
    assert _ingestor._our_id(event(None)) is None


async def test_a_receipt_for_a_pending_message_is_held_under_our_id() -> None:
    store = LookupStore(_message("m-1", "a", state=MessageState.PENDING))
    routed = await _route(store, _installation("a"), "kannel=dlr&type=1&id=m-1&answer=x")
    assert routed.events == [] and routed.transitions == [] and not routed.unroutable
    (held,) = routed.held
    assert held.provider_message_id == _held_receipts.our_id_key("m-1")
    assert (held.integration_id, held.event.installation_id, held.event.message_id) == (
        "kannel",
        "a",
        "",
    )
    assert held.release_at == NOW + timedelta(seconds=10)


async def test_a_provider_id_cannot_pass_for_a_key_held_by_our_id() -> None:
    jasmin = load_definition((ROOT / "integrations" / "jasmin.json").read_bytes())
    forged = _held_receipts.our_id_key("m-1")
    body = f"id={forged}&message_status=DELIVRD".encode()
    routed = await _route(LookupStore(), _installation("a"), "", definition=jasmin, body=body)
    assert routed.held == []  # never held under a key of ours
    (event,) = routed.events
    assert (event.message_id, event.provider_message_id) == ("", forged)


class ReleaseStore(LookupStore):
    def __init__(self, *messages: Any) -> None:
        super().__init__(*messages)
        self.released: list[Any] = []
        self.replayed: list[tuple[str, Any]] = []

    async def release_held(self, now: datetime) -> tuple[Any, ...]:
        released, self.released = tuple(self.released), []
        return released

    async def get_webhook_request(self, request_id: str) -> Any:
        return SimpleNamespace(id=request_id, outcome="matched", reason="")

    async def mark_replayed(self, request_id: str, **changes: Any) -> Any:
        self.replayed.append((request_id, changes))
        return SimpleNamespace(events=tuple(changes["events"]))


@pytest.mark.parametrize(
    ("message", "through", "correlated"),
    [
        (_message("m-1", "a"), "a", True),
        (_message("m-1", "b"), "a", False),  # another installation's message: never
        (_message("m-1", "b"), "", True),  # per-integration URL: within the integration
        (_message("m-1", "a", "jasmin"), "", False),  # another integration's message: never
        (None, "a", False),
    ],
)
async def test_a_receipt_held_by_our_id_is_released_to_its_message_only_in_scope(
    message: Any, through: str, correlated: bool
) -> None:
    store = ReleaseStore(*([message] if message else []))
    event = SimpleNamespace(
        type="messageDelivered", installation_id=through, request_id="r1", error=""
    )
    store.released.append(
        SimpleNamespace(
            integration_id="kannel",
            provider_message_id=_held_receipts.our_id_key("m-1"),
            event=event,
        )
    )
    hub = SimpleNamespace(notify=lambda: None)
    held = _held_receipts.HeldReceipts(store=store, hub=hub, receipt_wait_s=10)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            _held_receipts, "replace", lambda e, **kw: SimpleNamespace(**{**vars(e), **kw})
        )
        await held.release_due()
    (_, changes) = store.replayed[0]
    if correlated:
        (appended,) = changes["events"]
        assert appended.message_id == "m-1"
        assert [t.message_id for t in changes["transitions"]] == ["m-1"]
    elif through:
        (appended,) = changes["events"]  # produced for the URL's installation, uncorrelated
        assert not hasattr(appended, "message_id") or appended.message_id != "m-1"
        assert changes["transitions"] == []
    else:
        assert changes["events"] == () and changes["outcome"] == "unroutable"


class CountingStore(LookupStore):
    def __init__(self, *installations: Any) -> None:
        super().__init__(installations=installations)
        self.numbers: list[str] = []

    async def find_installation_by_number(self, integration_id: str, number: str) -> Any:
        self.numbers.append(number)
        return await super().find_installation_by_number(integration_id, number)


async def test_a_number_written_as_stored_is_routed_without_parsing_it() -> None:
    # Routing by number costs the same among 100,000 numbers as among one (issue 20): no parse,
    # so no cache of parsed numbers whose size would matter.
    store = CountingStore(_installation("a", "+4790000000"))
    _numbers._normalized.cache_clear()
    routed = await _route(store, None, "from=%2B4791&to=%2B4790000000&text=hi")
    (event,) = routed.events
    assert (event.installation_id, event.to_number, event.users) == ("a", "+4790000000", ("u0",))
    assert store.numbers == ["+4790000000"]
    assert _numbers._normalized.cache_info().misses == 0


async def test_a_number_written_otherwise_is_normalised_and_looked_up_once_more() -> None:
    store = CountingStore(_installation("a", "+4790000000"))
    routed = await _route(store, None, "from=%2B4791&to=%2B47+900+00+000&text=hi")
    assert [(e.installation_id, e.users) for e in routed.events] == [("a", ("u0",))]
    assert store.numbers == ["+4790000000"]
    unknown = CountingStore(_installation("a", "+4790000000"))
    routed = await _route(unknown, None, "from=%2B4791&to=%2B4790000009&text=hi")
    assert routed.unroutable and unknown.numbers == ["+4790000009"]  # one look-up, not two
