"""(ext) A webhook model's ``repeated`` (docs/format.md, "Webhook bodies"): which value of a field
sent more than once the model reads; without it, the list of the values, as before."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from server.engine import WebhookRequest, check_definition, load_definition, match_webhook
from server.engine._repeated import apply_repeated

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"
FORM = "application/x-www-form-urlencoded"

MMS = {
    "event_key": "mms",
    "event_type": "mms",
    "request_method": "POST",
    "request_parameters": {
        "originator": "$from$",
        "recipient": "$to$",
        "body": "$text?$",
        "mediaUrls": "$url$",
    },
}


def _doc(**model: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["Webhook"] = [copy.deepcopy({**MMS, **model})]
    return doc


def _form(pairs: list[tuple[str, str]]) -> WebhookRequest:
    return WebhookRequest(method="POST", content_type=FORM, body=urlencode(pairs).encode())


PAIRS = [
    ("originator", "31612345678"),
    ("recipient", "31687654321"),
    ("recipient", "31600000000"),
    ("mediaUrls", "https://m.example/1.jpg"),
    ("mediaUrls", "https://m.example/2.jpg"),
]


def test_without_repeated_a_repeated_field_is_the_list_of_its_values() -> None:
    [event] = match_webhook(load_definition(_doc()), _form(PAIRS)).events
    assert event.media_urls == ("https://m.example/1.jpg", "https://m.example/2.jpg")
    assert event.captures["to"] == ("31687654321", "31600000000")
    assert event.to_number == "31687654321"  # the event takes the first


def test_first_last_and_list() -> None:
    doc = _doc(repeated={"recipient": "last", "mediaUrls": "list", "originator": "first"})
    assert list(check_definition(doc)) == []
    [event] = match_webhook(load_definition(doc), _form(PAIRS)).events
    assert event.captures["to"] == "31600000000"
    assert event.captures["from"] == "31612345678"
    assert event.media_urls == ("https://m.example/1.jpg", "https://m.example/2.jpg")
    [one] = match_webhook(load_definition(doc), _form(PAIRS[:2] + PAIRS[3:4])).events
    assert one.captures["url"] == ("https://m.example/1.jpg",)  # a list of one


def test_a_literal_matches_the_value_the_model_reads() -> None:
    doc = _doc(repeated={"recipient": "first"})
    doc["Webhook"][0]["request_parameters"]["recipient"] = "31687654321"
    doc["Webhook"][0]["request_parameters"]["to"] = "$to$"
    pairs = [*PAIRS, ("to", "31687654321")]
    [event] = match_webhook(load_definition(doc), _form(pairs)).events
    assert event.to_number == "31687654321"
    last = _doc(repeated={"recipient": "last"})
    last["Webhook"][0]["request_parameters"]["recipient"] = "31687654321"
    last["Webhook"][0]["request_parameters"]["to"] = "$to$"
    miss = match_webhook(load_definition(last), _form(pairs))
    assert miss.events == ()
    assert "/recipient: expected '31687654321', got '31600000000'" in miss.unmatched[0].reason


def test_apply_repeated_leaves_what_it_does_not_name() -> None:
    payload: dict[str, object] = {"a": ["1", "2"], "b": "x", "c": None}
    assert apply_repeated({}, payload) is payload
    assert apply_repeated({"z": "first"}, payload) is payload
    assert apply_repeated({"a": "first", "b": "list", "c": "list"}, payload) == {
        "a": "1",
        "b": ["x"],
        "c": None,
    }
    assert payload["a"] == ["1", "2"]  # the payload itself is never changed
    assert apply_repeated({"a": "last"}, [payload]) == [payload]


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


def test_repeated_checks() -> None:
    assert _problems(_doc(repeated={"mediaUrl": "list"})) == [
        'error /Webhook/0/repeated/mediaUrl: "mediaUrl" is not a key of this model\'s '
        "request_parameters, so nothing reads it: name a field the model matches or captures"
    ]
    assert _problems(_doc(repeated={"mediaUrls*": "list"})) == [
        'error /Webhook/0/repeated/mediaUrls*: "mediaUrls*" is a family of keys; repeated names '
        "one field as sent"
    ]
    [wrong] = _problems(_doc(repeated={"mediaUrls": "all"}))
    assert wrong.startswith("error /Webhook/0/repeated/mediaUrls")


def test_a_pointer_reduces_a_list_inside_nested_objects() -> None:
    # Telegram's photo is its sizes, smallest first: the model reads the largest (the last)
    pattern = {"message": {"chat": {"id": "$from$"}, "to": "$to?$", "photo": {"file_id": "$url$"}}}
    doc = _doc(request_parameters=pattern, repeated={"/message/photo": "last"})
    assert list(check_definition(doc)) == []
    sizes = [{"file_id": "small"}, {"file_id": "medium"}, {"file_id": "large"}]
    message: dict[str, Any] = {"chat": {"id": 7}, "photo": sizes}
    data = json.dumps({"update_id": 1, "message": message}).encode()
    request = WebhookRequest(method="POST", content_type="application/json", body=data)
    [event] = match_webhook(load_definition(doc), request).events
    assert event.media_urls == ("large",)
    reduced = apply_repeated({"/message/photo": "last"}, {"message": message})
    assert reduced == {"message": {"chat": {"id": 7}, "photo": {"file_id": "large"}}}
    assert message["photo"] == sizes  # the payload as parsed is never changed


def test_a_pointer_through_something_that_is_not_an_object_changes_nothing() -> None:
    payload = {"message": [{"photo": [1, 2]}]}
    assert apply_repeated({"/message/photo": "last"}, payload) is payload
    assert apply_repeated({"/missing/photo": "first"}, payload) is payload


def test_the_checker_refuses_a_pointer_the_pattern_does_not_have() -> None:
    pattern = {"message": {"chat": {"id": "$from$"}, "to": "$to$", "photo": {"file_id": "$url$"}}}
    doc = _doc(request_parameters=pattern, repeated={"/message/video": "last"})
    assert [str(p) for p in check_definition(doc)] == [
        '/Webhook/0/repeated/~1message~1video: "/message/video" does not lead through this '
        "model's request_parameters objects to a key of them, so nothing reads it: name a "
        "field the model matches or captures"
    ]
