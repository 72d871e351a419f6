"""The later event types (docs/format.md, "More event types"): what a model of each must capture,
how each is routed and deduplicated, which change a message's state (none), and that a filter
without types leaves them out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from client._human_output import EVENT_TYPE_NAMES, event_line
from msgbridge.v1 import gateway_pb2
from server.api._convert import DEFAULT_EVENT_TYPES, event_pb, event_type_name
from server.api._gateway import GatewayServicer
from server.core.ingest._ingestor import _dedupe_key
from server.core.ingest._transitions import transition_for
from server.engine import (
    EventType,
    InboundEvent,
    WebhookRequest,
    check_definition,
    load_definition,
    match_webhook,
)
from server.security.api_access import Caller
from server.store import InboundEventType, MessageState, NewEvent

ROOT = Path(__file__).resolve().parents[2]
LATER = {"optedOut", "optedIn", "messageRead", "messageStatus"}
#: (ext) docs/format.md, "Conversation signals": later still, and as much left out of the default.
SIGNALS = {"typing", "conversationStarted", "messageDeleted"}


def template() -> dict[str, Any]:
    path = ROOT / "tests" / "fixtures" / "definitions" / "seed" / "complete_example.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def with_model(event_type: str, params: dict[str, Any]) -> dict[str, Any]:
    doc = template()
    doc["Webhook"] = [
        {
            "event_key": "k",
            "event_type": event_type,
            "request_method": "POST",
            "request_parameters": params,
        }
    ]
    return doc


@pytest.mark.parametrize(
    ("event_type", "params", "missing"),
    [
        ("optedOut", {"from": "$from$", "to": "$to$", "keyword": "$content?$"}, None),
        ("optedOut", {"from": "$from$", "keyword": "STOP"}, "$to$"),
        ("optedIn", {"to": "$to$"}, "$from$"),
        ("optedIn", {"from": "$from$", "to": "$to$"}, None),
        ("messageRead", {"id": "$messageid$"}, None),
        ("messageRead", {"status": "read", "to": "$to$"}, "$messageid$"),
        ("messageStatus", {"id": "$messageid$", "status": "$status$"}, None),
        ("messageStatus", {"id": "$messageid$", "status": "$status?$"}, "$status$"),
        ("messageStatus", {"status": "$status$"}, "$messageid$"),
    ],
)
def test_a_model_must_capture_what_its_type_needs(
    event_type: str, params: dict[str, Any], missing: str | None
) -> None:
    problems = check_definition(with_model(event_type, params))
    if missing is None:
        assert problems == ()
        return
    (problem,) = problems
    assert problem.pointer == "/Webhook/0/request_parameters"
    assert f'event_type "{event_type}"' in problem.message
    assert f"this one does not capture {missing} (" in problem.message


def test_an_unknown_event_type_is_still_refused() -> None:
    problems = check_definition(with_model("optedOutt", {"from": "$from$", "to": "$to$"}))
    assert problems and problems[0].pointer == "/Webhook/0/event_type"


def test_the_types_load_and_say_how_they_are_routed() -> None:
    doc = with_model("messageStatus", {"id": "$messageid$", "status": "$status$"})
    definition = load_definition(json.dumps(doc).encode())
    assert definition.webhooks[0].event_type is EventType.MESSAGE_STATUS
    receipts = {t.value for t in EventType if t.is_delivery}
    consent = {t.value for t in EventType if t.is_consent}
    assert receipts == {
        "messageDelivered",
        "messageFailed",
        "messageSent",
        "messageRead",
        "messageStatus",
    }
    assert consent == {"optedOut", "optedIn"}
    # The store names the same types (it keeps them as text: no migration).
    assert {t.value for t in EventType} == {t.value for t in InboundEventType}


def test_only_the_delivery_reports_move_a_message() -> None:
    message: Any = SimpleNamespace(id="m", provider_message_ids=())
    assert transition_for("messageRead", message, None, "p") is None
    assert transition_for("messageStatus", message, "ignored", "p") is None
    delivered = transition_for("messageDelivered", message, None, "p")
    assert delivered is not None and delivered.state is MessageState.DELIVERED
    assert (delivered.message_id, delivered.part) == ("m", None)
    # (ext) a message of several parts: the receipt names the part it is about
    parts: Any = SimpleNamespace(id="m", provider_message_ids=("p", "q"))
    failed = transition_for("messageFailed", parts, "x", "q")
    assert failed is not None and (failed.state, failed.part) == (MessageState.FAILED, "q")


def _inbound(event_type: EventType, status: str | None) -> InboundEvent:
    return InboundEvent(
        type=event_type,
        model=0,
        event_key="k",
        payload_pointer="",
        from_number=None,
        to_number=None,
        text=None,
        media_urls=(),
        provider_message_id="P-1",
        status=status,
        error=None,
        captures={},
    )


def test_each_status_of_a_message_is_its_own_event_and_a_retry_is_not() -> None:
    queued = _dedupe_key("o", _inbound(EventType.MESSAGE_STATUS, "queued"))
    buffered = _dedupe_key("o", _inbound(EventType.MESSAGE_STATUS, "buffered"))
    assert queued != buffered
    assert queued == _dedupe_key("o", _inbound(EventType.MESSAGE_STATUS, "queued"))
    # A hostile status cannot make the key large; two long ones stay apart.
    long_a = _dedupe_key("o", _inbound(EventType.MESSAGE_STATUS, "a" * 100_000))
    long_b = _dedupe_key("o", _inbound(EventType.MESSAGE_STATUS, "a" * 99_999 + "b"))
    assert len(long_a) < 200 and long_a != long_b
    # The other types keep their key (docs/format.md, "Duplicates").
    read = _dedupe_key("o", _inbound(EventType.MESSAGE_READ, "read"))
    assert read == "o|k|messageRead|P-1"


def test_an_empty_filter_means_the_first_five_types() -> None:
    unnamed = GatewayServicer._filter("", "", [], Caller())
    assert unnamed.types == DEFAULT_EVENT_TYPES
    assert not (DEFAULT_EVENT_TYPES & (LATER | SIGNALS))
    assert {t.value for t in EventType} == DEFAULT_EVENT_TYPES | LATER | SIGNALS
    named = GatewayServicer._filter("", "", [gateway_pb2.Event.OPTED_OUT], Caller())
    assert named.types == {"optedOut"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("optedOut", gateway_pb2.Event.OPTED_OUT),
        ("optedIn", gateway_pb2.Event.OPTED_IN),
        ("messageRead", gateway_pb2.Event.MESSAGE_READ),
        ("messageStatus", gateway_pb2.Event.MESSAGE_STATUS),
    ],
)
def test_the_api_and_the_client_name_each_type_alike(name: str, value: int) -> None:
    assert event_type_name(value) == name
    assert EVENT_TYPE_NAMES[name] == value
    event = NewEvent(
        type=name,
        org_id="org-1",
        installation_id="i",
        integration_id="acme",
        users=(),
        from_number="+15550001111",
        to_number="+15557654321",
        text="",
        media_urls=(),
        provider_message_id="P-1",
        message_id="",
        status="queued",
        error="",
        metadata={},
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        request_id="r",
        dedupe_key=None,
    )
    pb = event_pb(event)
    assert pb.type == value
    assert f"  {name}  " in event_line(pb)


def test_an_old_client_decodes_a_later_type_as_a_number() -> None:
    """Proto3 enums are open: bytes with a value an older client does not know still parse."""
    pb = gateway_pb2.Event(type=gateway_pb2.Event.MESSAGE_STATUS, status="queued")
    parsed = gateway_pb2.Event.FromString(pb.SerializeToString())
    assert int(parsed.type) == 9 and parsed.status == "queued"
    # The values only grew: the first five keep theirs.
    assert [gateway_pb2.Event.Type.Value(n) for n in ("MESSAGE", "MESSAGE_SENT")] == [1, 5]


# --- (ext) also: one payload, several events -----------------------------------------------------

STOP_MODEL = {
    "event_key": "stop",
    "event_type": "optedOut",
    "also": ["message"],
    "request_method": "POST",
    "request_parameters": {
        "id": "$messageid$", "from": "$from$", "to": "$to$", "text": "$content$", "flag": "STOP",
    },
}  # fmt: skip


def _match(doc: dict[str, Any], body: dict[str, Any]) -> tuple[InboundEvent, ...]:
    request = WebhookRequest(
        method="POST", headers=(), content_type="application/json", body=json.dumps(body).encode()
    )
    return match_webhook(load_definition(json.dumps(doc).encode()), request).events


def test_a_model_with_also_gives_its_own_event_then_each_listed_one() -> None:
    doc = template()
    doc["Webhook"] = [STOP_MODEL]
    body = {"id": "P-9", "from": "+1555000111", "to": "+1555000222", "text": "STOP", "flag": "STOP"}
    events = _match(doc, body)
    assert [e.type for e in events] == [EventType.OPTED_OUT, EventType.MESSAGE]
    assert {(e.from_number, e.to_number, e.text, e.provider_message_id) for e in events} == {
        ("+1555000111", "+1555000222", "STOP", "P-9")
    }
    # Each is deduplicated on its own: the two keys differ, and each is the same on a retry.
    keys = [_dedupe_key("o", e) for e in events]
    assert keys[0] != keys[1]
    assert keys == [_dedupe_key("o", e) for e in _match(doc, body)]


def test_a_payload_without_the_flag_gives_only_the_message() -> None:
    doc = template()
    message = {**STOP_MODEL, "event_key": "msg", "event_type": "message"}
    del message["also"]
    message["request_parameters"] = {
        k: v for k, v in STOP_MODEL["request_parameters"].items() if k != "flag"
    }
    doc["Webhook"] = [message, STOP_MODEL]
    body = {"id": "P-1", "from": "+15550001111", "to": "+15550002222", "text": "Hi"}
    assert [e.type for e in _match(doc, body)] == [EventType.MESSAGE]


@pytest.mark.parametrize(
    ("change", "pointer", "says"),
    [
        ({"event_type": "messageDelivered"}, "/Webhook/0/also", "gives one event"),
        ({"also": ["optedOut"]}, "/Webhook/0/also/0", "the model's own event_type"),
        ({"also": ["mms"]}, "/Webhook/0/request_parameters", 'event_type "mms" must capture'),
        ({"also": ["messageRead"]}, "/Webhook/0/also/0", ""),
    ],
)
def test_also_is_checked(change: dict[str, Any], pointer: str, says: str) -> None:
    doc = template()
    doc["Webhook"] = [{**STOP_MODEL, **change}]
    problems = [p for p in check_definition(doc) if p.severity == "error"]
    assert [p for p in problems if p.pointer.startswith(pointer) and says in p.message], problems


def test_a_model_with_also_loads_the_listed_types() -> None:
    doc = template()
    doc["Webhook"] = [STOP_MODEL]
    (model,) = load_definition(json.dumps(doc).encode()).webhooks
    assert model.also == (EventType.MESSAGE,)
