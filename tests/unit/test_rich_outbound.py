"""(ext) Rich outbound (docs/format.md, "Lists of items: $each", "Media kinds", "Replies,
templates and reply-to"): ``$each`` rendered per item and its checks, a file's media kind and the
``$switch`` check on it, and a send's rich parts as variables, validated and kept on the record."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from client._offline_cases import send_of
from server.core import QuickReply, SendRequest, send_variables
from server.core.send._request import request_json, request_of, validate
from server.engine import (
    Value,
    check_definition,
    load_definition,
    media_kind,
    plan_send,
    render_request,
)
from server.errors import InvalidRequest
from server.store import MessageKind

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"
CALL = {"from": "+61855555555", "to": "+61123456789", "API key": "k"}
REPLIES = {
    "reply_ids": ("yes", "no"),
    "reply_titles": ("Yes", "No"),
    "reply_descriptions": ("", "not now"),
}


def _doc(kind: str = "SendMessage", **send: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["API"][kind].update(send)
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p.pointer}: {p.message}" for p in check_definition(doc)]


def _bodies(doc: dict[str, Any], call: dict[str, Any], kind: str = "SendMessage") -> list[Any]:
    definition = load_definition(doc)
    template = definition.send_message if kind == "SendMessage" else definition.send_file
    assert template is not None
    return [
        json.loads(render_request(definition, s.template, s.variables).body or b"null")
        for s in plan_send(template, {**CALL, **call})
    ]


_BUTTONS = {
    "$each": "replies",
    "item": {"id": "$reply_id$", "title": "$reply_title$", "row": "$reply_description$"},
}


# -- $each: rendering -----------------------------------------------------------------------------


def test_each_renders_its_item_once_per_reply_and_leaves_out_what_an_item_lacks() -> None:
    doc = _doc(request_parameters={"to": "$to$", "text": "$content$", "buttons": _BUTTONS})
    (body,) = _bodies(doc, {"content": "Pick", **REPLIES})
    assert body["buttons"] == [
        {"id": "yes", "title": "Yes"},
        {"id": "no", "title": "No", "row": "not now"},
    ]


def test_each_without_items_is_left_out_and_with_omit_empty_so_is_its_parent() -> None:
    doc = _doc(request_parameters={"to": "$to$", "buttons": _BUTTONS})
    assert _bodies(doc, {}) == [{"to": "+61123456789"}]
    nested = _doc(
        request_omit_empty=True,
        request_parameters={"to": "$to$", "keyboard": {"rows": [_BUTTONS], "markup": _BUTTONS}},
    )
    assert _bodies(nested, {}) == [{"to": "+61123456789", "keyboard": {"rows": []}}]


def test_each_of_constant_items_and_a_whole_body_list() -> None:
    doc = _doc(request_parameters={"$each": "template_parameters", "item": "$template_parameter$"})
    assert _bodies(doc, {"template_parameters": ("a", "b")}) == [["a", "b"]]


def test_each_item_may_hold_a_switch_and_the_sends_own_variables() -> None:
    item = {
        "to": "$to$",
        "kind": {"$switch": "$reply_id$", "cases": {"yes": "positive"}, "default": "other"},
    }
    doc = _doc(request_parameters={"b": {"$each": "replies", "item": item}})
    (body,) = _bodies(doc, REPLIES)
    assert body["b"] == [
        {"to": "+61123456789", "kind": "positive"},
        {"to": "+61123456789", "kind": "other"},
    ]


def test_each_media_renders_every_file_with_its_kind_in_one_request() -> None:
    doc = _doc(
        "SendFile",
        request_parameters={
            "messages": {
                "$each": "media",
                "item": {"type": "$media_kind$", "url": "$content$"},
            }
        },
    )
    call = {
        "content": "https://x/a.png",
        "media_urls": ("https://x/a.png", "https://x/b.mp3"),
        "media_kinds": ("image", "audio"),
        "media_kind": "image",
    }
    (body,) = _bodies(doc, call, "SendFile")
    assert body["messages"] == [
        {"type": "image", "url": "https://x/a.png"},
        {"type": "audio", "url": "https://x/b.mp3"},
    ]


def test_for_each_media_gives_each_request_its_files_kind() -> None:
    doc = _doc(
        "SendFile",
        for_each="media",
        request_url="https://api.example.com/$media_kind|map:image=photo,audio=voice$",
        request_parameters={"url": "$content$", "kind": "$media_kind$"},
    )
    definition = load_definition(doc)
    assert definition.send_file is not None
    call: dict[str, Value] = {
        **CALL,
        "media_urls": ("https://x/a.png", "https://x/b.mp3", "https://x/c"),
        "media_kinds": ("image", "audio", "document"),
    }
    rendered = [
        render_request(definition, s.template, s.variables)
        for s in plan_send(definition.send_file, call)
    ]
    assert [r.url for r in rendered] == [
        "https://api.example.com/photo",
        "https://api.example.com/voice",
        "https://api.example.com/document",
    ]
    assert [json.loads(r.body or b"")["kind"] for r in rendered] == ["image", "audio", "document"]


# -- $each: checks --------------------------------------------------------------------------------


def test_a_clean_each_has_no_problem() -> None:
    doc = _doc(request_parameters={"to": "$to$", "b": _BUTTONS, "reply": "$reply_to$"})
    assert _problems(doc) == []


@pytest.mark.parametrize(
    ("kind", "parameters", "pointer", "words"),
    [
        (
            "SendMessage",
            {"b": {"$each": "replys", "item": "$reply_id$"}},
            "/API/SendMessage/request_parameters/b/$each",
            "one of replies, template_parameters, media (did you mean replies?)",
        ),
        (
            "SendMessage",
            {"b": {"$each": "media", "item": "$content$"}},
            "/API/SendMessage/request_parameters/b/$each",
            'the list "media" is a SendFile\'s; SendMessage has no media',
        ),
        (
            "SendMessage",
            {"b": {"$each": "replies"}},
            "/API/SendMessage/request_parameters/b",
            'an $each needs "item"',
        ),
        (
            "SendMessage",
            {"b": {"$each": "replies", "item": "$reply_id$", "max": 3}},
            "/API/SendMessage/request_parameters/b/max",
            'an $each object has only "$each" and "item"',
        ),
        (
            "SendMessage",
            {"b": {"$each": "replies", "item": {"x": "$to$"}}},
            "/API/SendMessage/request_parameters/b/item",
            "the item uses none of its own variables ($reply_id$, $reply_title$, "
            "$reply_description$)",
        ),
        (
            "SendMessage",
            {"b": {"$each": "replies", "item": {"x": "$template_parameter$"}}},
            "/API/SendMessage/request_parameters/b/item/x",
            "$template_parameter$ is not available in SendMessage; it can be used in an item of "
            '{"$each": "template_parameters"} in SendMessage',
        ),
        (
            "SendMessage",
            {"b": {"$each": "replies", "item": {"x": "$reply_id$", "in": _BUTTONS}}},
            "/API/SendMessage/request_parameters/b/item/in/$each",
            "an $each inside another $each's item",
        ),
        (
            "SendMessage",
            {"id": "$reply_id$"},
            "/API/SendMessage/request_parameters/id",
            '$reply_id$ is not available in SendMessage; it can be used in an item of {"$each": '
            '"replies"}',
        ),
        (
            "SendFile",
            {"k": "$template_name$"},
            "/API/SendFile/request_parameters/k",
            "$template_name$ is not available in SendFile; it can be used in SendMessage",
        ),
    ],
)
def test_each_checks(kind: str, parameters: dict[str, Any], pointer: str, words: str) -> None:
    problems = _problems(_doc(kind, request_parameters=parameters))
    assert any(p.startswith(f"error {pointer}: ") and words in p for p in problems), problems


def test_each_outside_a_sends_body_is_an_error() -> None:
    doc = _doc(request_query={"b": _BUTTONS})
    doc["Webhook"][0]["request_parameters"]["list"] = {"$each": "replies", "item": "x"}
    problems = _problems(doc)
    assert any(
        p.startswith("error /API/SendMessage/request_query/b/$each: ") and "not request_query" in p
        for p in problems
    ), problems
    assert any(
        p.startswith("error /Webhook/0/request_parameters/list/$each: ") for p in problems
    ), problems


def test_a_property_cannot_be_named_like_an_item_variable() -> None:
    doc = _doc()
    doc["properties"].append({"name": "reply_title", "secret": False, "required": False})
    assert any("is the name of a variable" in p for p in _problems(doc))


# -- media kinds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "url", "kind"),
    [
        ("image/jpeg", "https://x/a.pdf", "image"),
        ("VIDEO/mp4", "", "video"),
        ("audio/ogg; codecs=opus", "", "audio"),
        ("application/pdf", "https://x/a.png", "document"),
        ("text/vcard", "", "document"),
        ("", "https://x/path/clip.MOV?sig=1", "video"),
        ("", "https://x/voice.opus", "audio"),
        ("", "https://x/photo.webp#frag", "image"),
        ("", "https://x/terms", "document"),
        ("", "https://x/archive.tar.gz", "document"),
        ("", "https://x.png/", "document"),
    ],
)
def test_media_kind_from_the_type_else_the_urls_extension(
    media_type: str, url: str, kind: str
) -> None:
    assert media_kind(media_type, url) == kind


def test_a_switch_on_media_kind_names_kinds_and_covers_them() -> None:
    switch = {"$switch": "$media_kind$", "cases": {"image": "photo", "pdf": "document"}}
    problems = _problems(_doc("SendFile", request_parameters={"type": switch}))
    assert any(
        "/API/SendFile/request_parameters/type/cases/pdf: " in p
        and '"pdf" is not a value of $media_kind$' in p
        and "it is image, video, audio or document" in p
        for p in problems
    ), problems
    assert any(
        "/API/SendFile/request_parameters/type/cases: " in p
        and "no case for video, audio or document and no default" in p
        for p in problems
    ), problems
    covered = {**switch, "cases": {"image": "photo"}, "default": "document"}
    assert _problems(_doc("SendFile", request_parameters={"type": covered})) == []
    misplaced = _problems(_doc(request_parameters={"type": covered}))
    assert any("$media_kind$ is not available in SendMessage" in p for p in misplaced)


# -- the send's rich parts ------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _message(**fields: Any) -> SendRequest:
    return SendRequest(
        kind=MessageKind.SMS, org_id="o", from_number="+1", to="+2", text="hi", **fields
    )


def test_replies_template_and_reply_to_as_variables() -> None:
    request = _message(
        replies=(QuickReply("a", "A"), QuickReply("b", "B", "second")),
        template_name="t",
        template_language="en",
        template_parameters=("p1",),
        reply_to="m-1",
    )
    variables = send_variables(request, "g-1", "https://hook")
    assert variables["reply_count"] == "2"
    assert variables["reply_ids"] == ("a", "b")
    assert variables["reply_titles"] == ("A", "B")
    assert variables["reply_descriptions"] == ("", "second")
    assert (variables["template_name"], variables["template_language"]) == ("t", "en")
    assert variables["template_parameters"] == ("p1",)
    assert variables["reply_to"] == "m-1"
    plain = send_variables(_message(), "g-1", "https://hook")
    assert plain["reply_count"] == "0"
    assert not {"reply_to", "reply_ids", "template_name", "template_parameters"} & set(plain)


def test_a_files_kinds_the_caller_first_then_its_type_then_its_url() -> None:
    request = SendRequest(
        kind=MessageKind.MMS,
        org_id="o",
        from_number="+1",
        to="+2",
        media_url="https://x/a",
        media_type="video/mp4",
        media_urls=("https://x/b.jpg", "https://x/c"),
    )
    variables = send_variables(request, "g", "https://hook")
    assert variables["media_kinds"] == ("video", "image", "document")
    assert variables["media_kind"] == "video"
    chosen = send_variables(
        SendRequest(**{**_fields(request), "media_kind": "document"}), "g", "https://hook"
    )
    assert chosen["media_kinds"] == ("document", "image", "document")


def _fields(request: SendRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}


def test_rich_parts_are_kept_on_the_record_and_read_back() -> None:
    request = _message(
        replies=(QuickReply("a", "A", "d"),),
        template_name="t",
        template_language="en",
        template_parameters=("p1", "p2"),
        reply_to="m-1",
    )
    kept = request_json(request)
    assert kept is not None
    record = _record(request.text, kept)
    back = request_of(record)
    assert back.replies == request.replies
    assert (back.template_name, back.template_language) == ("t", "en")
    assert back.template_parameters == ("p1", "p2")
    assert back.reply_to == "m-1"
    # A request without them keeps the fingerprint and the record it always had.
    assert request_json(_message()) is None
    assert request.fingerprint() != _message().fingerprint()


def _record(text: str, kept: str) -> Any:
    """What request_of reads of a message record."""
    return SimpleNamespace(
        kind=MessageKind.SMS,
        org_id="o",
        from_number="+1",
        to_number="+2",
        text=text,
        media_url=None,
        idempotency_key=None,
        metadata={},
        send_at=None,
        ordered=True,
        request_json=kept,
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"replies": tuple(QuickReply(str(i), "t") for i in range(14))}, "replies"),
        ({"replies": (QuickReply("", "t"),)}, "replies[0].id"),
        ({"replies": (QuickReply("a", "x" * 257),)}, "replies[0].title"),
        ({"template_parameters": ("a",)}, "template.name"),
        ({"template_name": "t", "template_parameters": ("x" * 1025,)}, "template.parameters[0]"),
        ({"template_name": "t", "template_parameters": ("p",) * 33}, "template.parameters"),
        ({"reply_to": "x" * 257}, "reply_to"),
        ({"text": ""}, "text"),
    ],
)
def test_bad_rich_parts_are_refused(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(SendRequest(**{**_fields(_message()), **fields}), NOW)
    assert field in [name for name, _ in caught.value.violations]


def test_a_template_needs_no_text() -> None:
    validate(SendRequest(**{**_fields(_message()), "text": "", "template_name": "t"}), NOW)


def test_a_send_case_carries_rich_parts() -> None:
    sms = send_of(
        {
            "from": "1",
            "to": "2",
            "replies": [{"id": "a", "title": "A"}, {"id": "b", "title": "B", "description": "d"}],
            "template": {"name": "t", "language": "en", "parameters": ["x"]},
            "reply_to": "m-1",
        }
    )
    assert sms.replies == (QuickReply("a", "A"), QuickReply("b", "B", "d"))
    assert (sms.template_name, sms.template_language, sms.template_parameters) == (
        "t",
        "en",
        ("x",),
    )
    assert sms.reply_to == "m-1"
    mms = send_of(
        {"kind": "mms", "from": "1", "to": "2", "media_url": "https://x/a", "media_kind": "audio"}
    )
    assert mms.media_kind == "audio"
