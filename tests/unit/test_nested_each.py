"""(ext) ``each`` over nested lists and ``enclosing`` patterns (docs/format.md, "Nested lists"):
one webhook with several events of different kinds — WhatsApp Cloud API's messages and statuses
inside ``entry[].changes[]``, Messenger's ``entry[].messaging[]`` — matched as the definitions in
this file describe them, never by code for a platform."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from server.engine import (
    DefinitionError,
    WebhookRequest,
    check_definition,
    freeze,
    load_definition,
    match_webhook,
)
from server.engine._nested_each import find_lists
from tests.nested_lists_support import AROUND, MESSAGES, whatsapp_status, whatsapp_text

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"


def _doc(*models: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["Webhook"] = [copy.deepcopy(m) for m in models]
    return doc


WHATSAPP = _doc(
    whatsapp_text(),
    whatsapp_status("sent", "messageSent"),
    whatsapp_status("delivered", "messageDelivered"),
    whatsapp_status("read", "messageRead"),
    whatsapp_status("failed", "messageFailed"),
)


def _change(phone_number_id: str, **value: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": "15550000000", "phone_number_id": phone_number_id}
    return {
        "field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": metadata} | value,
    }


def _text(wamid: str, sender: str, body: str) -> dict[str, Any]:
    message = {"from": sender, "id": wamid, "timestamp": "1700000000", "type": "text"}
    return message | {"text": {"body": body}}


def _status(wamid: str, status: str) -> dict[str, Any]:
    return {"id": wamid, "status": status, "timestamp": "1700000001", "recipient_id": "4917600"}


def _post(document: dict[str, Any], body: Any) -> Any:
    request = WebhookRequest(
        method="POST", content_type="application/json", body=json.dumps(body).encode()
    )
    return match_webhook(load_definition(document), request)


# A body as WhatsApp Cloud API documents it: two entries, one change holding a message and a
# status together, another change holding a status only.
BODY: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "WABA-1",
            "changes": [
                _change(
                    "PNID-1",
                    contacts=[{"profile": {"name": "Ada"}, "wa_id": "4917611"}],
                    messages=[_text("wamid.IN1", "4917611", "hello")],
                    statuses=[_status("wamid.OUT1", "delivered")],
                ),
            ],
        },
        {
            "id": "WABA-2",
            "changes": [
                _change("PNID-2", statuses=[_status("wamid.OUT2", "read")]),
                _change("PNID-2", statuses=[]),
            ],
        },
    ],
}


def test_the_whatsapp_definition_checks_clean() -> None:
    assert [p for p in check_definition(WHATSAPP) if p.severity == "error"] == []


def test_one_request_yields_messages_and_receipts_together() -> None:
    result = _post(WHATSAPP, BODY)
    assert result.unmatched == ()
    summary = [(e.type.value, e.provider_message_id, e.payload_pointer) for e in result.events]
    assert summary == [
        ("message", "wamid.IN1", "/entry/0/changes/0/value/messages/0"),
        ("messageDelivered", "wamid.OUT1", "/entry/0/changes/0/value/statuses/0"),
        ("messageRead", "wamid.OUT2", "/entry/1/changes/0/value/statuses/0"),
    ]


def test_enclosing_values_reach_the_event_of_the_payload_they_enclose() -> None:
    [message] = [e for e in _post(WHATSAPP, BODY).events if e.type.value == "message"]
    assert message.from_number == "4917611"
    assert message.to_number == "PNID-1"  # the change's metadata, not the message's
    assert message.text == "hello"
    assert dict(message.fields) == {"contact_name": "Ada"}


def test_each_payload_takes_the_values_of_its_own_enclosing_element() -> None:
    body = copy.deepcopy(BODY)
    value = body["entry"][1]["changes"][1]["value"]
    value["contacts"] = [{"profile": {"name": "Bob"}, "wa_id": "4917622"}]
    value["messages"] = [_text("wamid.IN2", "4917622", "hi")]
    messages = [e for e in _post(WHATSAPP, body).events if e.type.value == "message"]
    summary = [(e.provider_message_id, e.to_number, dict(e.fields)) for e in messages]
    assert summary == [
        ("wamid.IN1", "PNID-1", {"contact_name": "Ada"}),
        ("wamid.IN2", "PNID-2", {"contact_name": "Bob"}),
    ]


def test_the_payloads_own_capture_wins_over_an_enclosing_one() -> None:
    model = whatsapp_text()
    model["request_parameters"]["to"] = "$to$"
    [message] = [
        e for e in _post(_doc(model), _with_to(BODY)).events if e.provider_message_id == "wamid.IN1"
    ]
    assert message.to_number == "own"


def _with_to(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["entry"][0]["changes"][0]["value"]["messages"][0]["to"] = "own"
    return body


def test_an_enclosing_literal_that_fails_means_the_model_does_not_match() -> None:
    body = copy.deepcopy(BODY)
    body["object"] = "page"
    result = _post(WHATSAPP, body)
    assert result.events == ()
    first = result.unmatched[0]
    assert first.payload_pointer == "/entry/0/changes/0/value/messages/0"
    assert "/object: expected 'whatsapp_business_account', got 'page'" in first.reason


def test_an_enclosing_failure_names_the_concrete_place() -> None:
    body = copy.deepcopy(BODY)
    del body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
    result = _post(WHATSAPP, body)
    [miss] = [u for u in result.unmatched if u.payload_pointer.endswith("messages/0")]
    assert "/entry/0/changes/0/value/metadata/phone_number_id: key missing" in miss.reason
    # the statuses were still events
    assert {e.provider_message_id for e in result.events} == {"wamid.OUT1", "wamid.OUT2"}


def test_a_status_no_model_matches_is_kept_beside_the_events() -> None:
    body = copy.deepcopy(BODY)
    body["entry"][1]["changes"][0]["value"]["statuses"].append(_status("wamid.X", "deleted"))
    result = _post(WHATSAPP, body)
    assert [u.payload_pointer for u in result.unmatched] == ["/entry/1/changes/0/value/statuses/1"]
    assert len(result.events) == 3


def test_a_body_without_any_list_says_where_the_models_looked() -> None:
    result = _post(WHATSAPP, {"object": "whatsapp_business_account", "entry": []})
    assert result.events == ()
    reasons = [u.reason for u in result.unmatched]
    assert any(f"the body has no list at {MESSAGES}" in r for r in reasons)


def test_the_same_payload_twice_gives_two_events_with_the_same_dedupe_fields() -> None:
    # A retried webhook carries the same wamid: each event keeps its own id and type, which is
    # what its dedupe key is made of (docs/format.md, "Duplicates").
    body = copy.deepcopy(BODY)
    body["entry"].append(copy.deepcopy(body["entry"][0]))
    events = _post(WHATSAPP, body).events
    keys = [(e.event_key, e.type.value, e.provider_message_id) for e in events]
    assert keys.count(("text", "message", "wamid.IN1")) == 2
    assert keys.count(("delivered", "messageDelivered", "wamid.OUT1")) == 2


# --- Messenger: one list per entry, messages and receipts in it -------------------------------

MESSENGER = _doc(
    {
        "event_key": "message",
        "event_type": "message",
        "request_method": "POST",
        "each": "/entry/*/messaging",
        "enclosing": {"": {"object": "page"}},
        "request_parameters": {
            "sender": {"id": "$from$"},
            "recipient": {"id": "$to$"},
            "message": {"mid": "$messageid$", "text": "$content$"},
        },
    },
    {
        "event_key": "delivery",
        "event_type": "messageDelivered",
        "request_method": "POST",
        "each": "/entry/*/messaging",
        "enclosing": {"": {"object": "page"}},
        "request_parameters": {"delivery": {"mids": "$messageid$"}},
    },
)


def test_messenger_messages_and_deliveries_in_one_list_of_each_entry() -> None:
    assert [p for p in check_definition(MESSENGER) if p.severity == "error"] == []
    body = {
        "object": "page",
        "entry": [
            {
                "id": "PAGE",
                "time": 1700000000,
                "messaging": [
                    {
                        "sender": {"id": "PSID-1"},
                        "recipient": {"id": "PAGE"},
                        "timestamp": 1700000000,
                        "message": {"mid": "m_1", "text": "hi"},
                    },
                    {
                        "sender": {"id": "PSID-1"},
                        "recipient": {"id": "PAGE"},
                        "delivery": {"mids": ["m_out"], "watermark": 1700000000},
                    },
                ],
            },
            {
                "id": "PAGE",
                "time": 1700000001,
                "messaging": [
                    {
                        "sender": {"id": "PSID-2"},
                        "recipient": {"id": "PAGE"},
                        "message": {"mid": "m_2", "text": "yo"},
                    }
                ],
            },
        ],
    }
    result = _post(MESSENGER, body)
    assert result.unmatched == ()
    assert [(e.type.value, e.provider_message_id, e.from_number) for e in result.events] == [
        ("message", "m_1", "PSID-1"),  # in document order: both models find this list
        ("messageDelivered", "m_out", None),
        ("message", "m_2", "PSID-2"),
    ]


# --- checks --------------------------------------------------------------------------------------


def _problems(**fields: Any) -> list[tuple[str, str]]:
    model = whatsapp_text() | fields
    return [(p.pointer, p.message) for p in check_definition(_doc(model)) if p.severity == "error"]


def test_check_refuses_a_last_wildcard() -> None:
    [(at, message)] = _problems(each="/entry/*/changes/*/value/messages/*")
    assert at == "/Webhook/0/each"
    assert 'write "/entry/*/changes/*/value/messages"' in message


def test_check_bounds_the_wildcards() -> None:
    each = "/a/*/b/*/c/*/d/*/e/*/f"
    [(at, message)] = _problems(each=each, enclosing={"/a/*/b/*": AROUND["/entry/*/changes/*"]})
    assert at == "/Webhook/0/each"
    assert "at most 4 nested lists" in message


def test_check_refuses_an_enclosing_pointer_that_is_not_a_prefix_of_each() -> None:
    enclosing = copy.deepcopy(AROUND) | {"/entry/*/other": {"x": "y"}}
    [(at, message)] = _problems(enclosing=enclosing)
    assert at == "/Webhook/0/enclosing/~1entry~1*~1other"
    assert "shorter prefix of each" in message
    [(at, _)] = _problems(enclosing=copy.deepcopy(AROUND) | {MESSAGES: {"x": "y"}})
    assert at.startswith("/Webhook/0/enclosing/")


def test_check_refuses_an_enclosing_pointer_at_a_walked_list() -> None:
    [(at, message)] = _problems(enclosing=copy.deepcopy(AROUND) | {"/entry": {"x": "y"}})
    assert at == "/Webhook/0/enclosing/~1entry"
    assert 'write "/entry/*"' in message


def test_check_refuses_enclosing_without_each() -> None:
    model = whatsapp_text()
    del model["each"]
    problems = [p for p in check_definition(_doc(model)) if p.severity == "error"]
    assert [p.pointer for p in problems] == ["/Webhook/0/enclosing"]


def test_schema_refuses_a_bad_enclosing_pointer_and_a_non_object_pattern() -> None:
    problems = _problems(enclosing=copy.deepcopy(AROUND) | {"entry": {"x": "y"}})
    assert [at for at, _ in problems] == ["/Webhook/0/enclosing/entry"]
    assert "must be a JSON Pointer" in problems[0][1]
    problems = _problems(enclosing=copy.deepcopy(AROUND) | {"": "whatsapp"})
    assert problems and all(at.startswith("/Webhook/0/enclosing/") for at, _ in problems)


def test_check_knows_the_captures_of_enclosing_patterns() -> None:
    # $to$ is captured only around the payload: the model still captures what a message needs
    assert _problems() == []
    model = whatsapp_text()
    model["enclosing"]["/entry/*/changes/*"]["value"]["metadata"]["phone_number_id"] = "$tto$"
    assert any("$tto$" in message or "tto" in message for _, message in _problems(**model))


def test_a_long_each_pointer_is_refused() -> None:
    problems = _problems(each="/" + "a" * 600)
    assert any(at == "/Webhook/0/each" and "512" in message for at, message in problems)


# --- cost ----------------------------------------------------------------------------------------


def test_find_lists_keeps_only_the_asked_depths() -> None:
    body = {"a": [{"b": [1, 2]}, {"b": "x"}, {"c": 1}, 5]}
    found = find_lists(body, ("a", "*", "b"), frozenset({0, 2}))
    assert found == [("/a/0/b", [1, 2], (body, {"b": [1, 2]}))]


@pytest.mark.parametrize("contacts", [1, 2_000])
def test_an_enclosing_element_is_matched_once_however_many_payloads_it_holds(
    contacts: int,
) -> None:
    # 2,000 messages in one change with 2,000 contacts: matching the change's pattern for every
    # message would be quadratic (docs/format.md, "Limits").
    value = {
        "contacts": [{"profile": {"name": f"n{i}"}} for i in range(contacts)],
        "messages": [_text(f"wamid.{i}", "4917611", "x") for i in range(2_000)],
    }
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [_change("P", **value)]}]}
    started = time.perf_counter()
    result = _post(WHATSAPP, body)
    assert len(result.events) == 2_000
    assert time.perf_counter() - started < 5


# --- ranking and bounds --------------------------------------------------------------------------


def test_an_enclosing_literal_ranks_a_model_first_and_tells_models_apart() -> None:
    # Two models of one each pointer, told apart only by a literal around the payload.
    loose = whatsapp_text() | {"event_key": "any"}
    del loose["enclosing"]["/entry/*/changes/*"]["field"]
    other = whatsapp_text() | {"event_key": "other"}
    other["enclosing"]["/entry/*/changes/*"]["field"] = "other_field"
    doc = _doc(loose, whatsapp_text(), other)
    assert [p for p in check_definition(doc) if p.severity == "warning"] == []
    result = _post(doc, BODY)
    assert [e.event_key for e in result.events if e.type.value == "message"] == ["text"]


def test_the_same_enclosing_constraints_are_warned_about() -> None:
    doc = _doc(whatsapp_text(), whatsapp_text() | {"event_key": "again"})
    [warning] = [p for p in check_definition(doc) if p.severity == "warning"]
    assert warning.pointer == "/Webhook/1"


def test_enclosing_values_count_to_the_pattern_bound_but_its_keys_are_no_star_keys() -> None:
    model = whatsapp_text()
    model["enclosing"][""] = {f"k{i}": "x" for i in range(1_001)}
    problems = [p for p in check_definition(_doc(model)) if p.severity == "error"]
    [problem] = problems  # at the value past the bound, under the "" key
    assert problem.pointer.startswith("/Webhook/0/enclosing//k")
    assert "at most 1000 values" in problems[0].message
    many = [whatsapp_text() | {"event_key": f"m{i}"} for i in range(40)]
    for i, m in enumerate(many):
        m["request_parameters"]["id"] = f"$messageid$-{i}"
    problems = [p for p in check_definition(_doc(*many)) if "ending in" in p.message]
    assert problems == []  # 80 "/entry/*/changes/*" keys, no `*` key among them


def test_a_definition_built_without_the_loader_cannot_read_another_node() -> None:
    # The checker refuses such a pointer; a Definition made in code is refused by the matcher
    # rather than read a node that does not enclose the payload.
    loaded = load_definition(WHATSAPP)
    wrong = replace(loaded.webhooks[0], enclosing=MappingProxyType({"/other": freeze({})}))
    definition = replace(loaded, webhooks=(wrong,))
    request = WebhookRequest(method="POST", content_type="application/json", body=b"{}")
    with pytest.raises(DefinitionError):
        match_webhook(definition, request)
