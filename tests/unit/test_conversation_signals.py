"""(ext) Conversation signals in the format (docs/format.md, "Conversation signals"): the
SendTyping and MarkRead requests — loaded, rendered, and what `msgbridge check` refuses in them —
and the typing, conversationStarted and messageDeleted event types: what a model must capture,
that they are routed as inbound events and left out of a filter without types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_more_event_types import template, with_model

from client.cli import main
from msgbridge.v1 import gateway_pb2
from server.api._convert import DEFAULT_EVENT_TYPES, event_type_name
from server.core import Signal, SignalRequest
from server.core.send._signals import signal_variables
from server.engine import EventType, check_definition, load_definition, render_request

TYPING = {
    "request_method": "POST",
    "request_url": "https://api.example.com/v1/chats/$to$/typing",
    "request_parameters": {"from": "$from$", "reply_to": "$messageid$", "agent": "$extension$"},
}
READ = {
    "request_method": "POST",
    "request_url": "https://api.example.com/v1/messages",
    "request_parameters": {"status": "read", "message_id": "$messageid$", "to": "$to$"},
    "response_map": {"success": True, "error": "$error$"},
    "response_rules": {"errors": [{"status": [400], "outcome": "rejected"}]},
}


def with_signals(**changes: Any) -> dict[str, Any]:
    doc = template()
    doc["API"]["SendTyping"] = {**TYPING, **changes.pop("typing", {})}
    doc["API"]["MarkRead"] = {**READ, **changes.pop("read", {})}
    return doc


def errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(doc) if p.severity == "error"]


# -- the requests ---------------------------------------------------------------------------------


def test_both_requests_load_and_render_with_the_conversation() -> None:
    doc = with_signals()
    assert errors(doc) == []
    definition = load_definition(json.dumps(doc))
    assert definition.send_typing is not None and definition.mark_read is not None
    assert definition.send_typing.pointer == "/API/SendTyping"
    request = SignalRequest(
        signal=Signal.READ,
        org_id="o",
        from_number="+15550001111",
        to="chat 7",
        provider_message_id="wamid.1",
    )
    variables = {"API key": "k"} | signal_variables(request, "https://gw.example/hook")
    read = render_request(definition, definition.mark_read, variables)
    assert json.loads(read.body or b"") == {
        "status": "read",
        "message_id": "wamid.1",
        "to": "chat 7",
    }
    typing = render_request(definition, definition.send_typing, variables)
    assert typing.url == "https://api.example.com/v1/chats/chat%207/typing"
    # A value without one leaves its key out, as in any request.
    assert json.loads(typing.body or b"") == {"from": "+15550001111", "reply_to": "wamid.1"}


def test_a_definition_without_them_has_none() -> None:
    definition = load_definition(json.dumps(template()))
    assert definition.send_typing is None and definition.mark_read is None


def test_a_variant_may_add_a_signal() -> None:
    doc = template()
    doc["properties"].append({"name": "Plan", "options": ["basic", "chat"]})
    doc["variants"] = {"Plan": {"chat": {"API": {"MarkRead": READ}}}}
    assert errors(doc) == []
    definition = load_definition(json.dumps(doc))
    assert definition.choose({"Plan": "basic"}).mark_read is None
    assert definition.choose({"Plan": "chat"}).mark_read is not None


@pytest.mark.parametrize(
    ("placeholder", "where"),
    [
        ("$content$", "SendMessage, SendFile and webhook models"),
        ("$gateway_id$", "SendMessage, SendFile and webhook models"),
        ("$encoding$", "SendMessage and SendFile"),
        ("$number$", "Subscribe and Unsubscribe"),
    ],
)
def test_a_signal_has_no_text_no_message_of_ours_and_no_number(
    placeholder: str, where: str
) -> None:
    doc = with_signals(typing={"request_parameters": {"x": placeholder}})
    assert errors(doc) == [
        (
            "/API/SendTyping/request_parameters/x",
            f"{placeholder} is not available in SendTyping; it can be used in {where}",
        )
    ]


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("split", {"max_length": 10}, "only SendMessage and SendFile"),
        ("for_each", "once", "only SendMessage and SendFile"),
        ("then", TYPING, "only SendMessage and SendFile"),
        ("provider_deduplicates", True, "only SendMessage and SendFile"),
        ("only_if", {"present": "to"}, "for Subscribe and Unsubscribe requests only"),
        ("find", {"where": {"/a": "b"}, "capture": {"c": "/d"}}, "Subscribe and Unsubscribe"),
    ],
)
def test_a_signal_is_one_request(key: str, value: object, says: str) -> None:
    found = errors(with_signals(read={key: value}))
    assert [at for at, _ in found] == [f"/API/MarkRead/{key}"]
    assert says in found[0][1]


def test_response_rules_judge_a_signals_answer_and_are_checked() -> None:
    rules = {"require": [{"capture": "messageid", "present": True}]}
    assert errors(with_signals(read={"response_rules": rules})) == [
        (
            "/API/MarkRead/response_rules/require/0/capture",
            "the response_map never captures $messageid$, so this condition is about nothing: "
            "capture it in the response_map, or test its pointer",
        )
    ]


def test_check_renders_and_judges_a_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "chat.json"
    file.write_text(json.dumps(with_signals()), encoding="utf-8")
    variables = tmp_path / "vars.json"
    variables.write_text(
        json.dumps({"API key": "k", "from": "+1555", "to": "c-1", "messageid": "m-9"}),
        encoding="utf-8",
    )
    assert (
        main(["check", "--render", str(file), "--vars", str(variables), "--request", "MarkRead"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("POST https://api.example.com/v1/messages\n")
    assert '"message_id":"m-9"' in out
    answer = tmp_path / "answer.json"
    answer.write_text('{"success": false, "error": "not found"}', encoding="utf-8")
    code = main(
        ["check", "--response", str(file), "--answer", str(answer), "--request", "MarkRead"]
    )
    assert code == 1
    assert "PROVIDER_REFUSED" in capsys.readouterr().out
    doc = template()
    file.write_text(json.dumps(doc), encoding="utf-8")
    assert (
        main(["check", "--render", str(file), "--vars", str(variables), "--request", "SendTyping"])
        == 1
    )


# -- the inbound event types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "params", "missing"),
    [
        ("typing", {"from": "$from$", "to": "$to$"}, None),
        ("typing", {"from": "$from$", "to": "$to?$", "state": "$status?$"}, None),
        ("typing", {"to": "$to$"}, "$from$"),
        ("conversationStarted", {"from": "$from$", "to": "$to$", "ref": "$ref?$"}, None),
        ("conversationStarted", {"from": "$from$"}, "$to$"),
        ("messageDeleted", {"from": "$from$", "to": "$to$", "mid": "$messageid$"}, None),
        ("messageDeleted", {"from": "$from$", "to": "$to$"}, "$messageid$"),
        ("messageDeleted", {"from": "$from$", "to": "$to$", "mid": "$messageid?$"}, "$messageid$"),
    ],
)
def test_a_model_must_capture_what_its_type_needs(
    event_type: str, params: dict[str, Any], missing: str | None
) -> None:
    doc = with_model(event_type, params)
    if "ref" in params:
        doc["Webhook"][0]["keep"] = ["ref"]
    problems = [p for p in check_definition(doc) if p.severity == "error"]
    if missing is None:
        assert problems == []
        return
    (problem,) = problems
    assert problem.pointer == "/Webhook/0/request_parameters"
    assert f'event_type "{event_type}"' in problem.message and missing in problem.message


def test_they_are_routed_as_inbound_events_and_named_in_the_api() -> None:
    for name, value in (
        ("typing", gateway_pb2.Event.TYPING),
        ("conversationStarted", gateway_pb2.Event.CONVERSATION_STARTED),
        ("messageDeleted", gateway_pb2.Event.MESSAGE_DELETED),
    ):
        kind = EventType(name)
        assert not kind.is_delivery and not kind.is_consent  # routed by `to`, record no opt-out
        assert event_type_name(value) == name
        assert name not in DEFAULT_EVENT_TYPES  # only to a caller whose types name them


def test_also_cannot_list_them() -> None:
    doc = with_model("message", {"from": "$from$", "to": "$to$", "text": "$content$"})
    doc["Webhook"][0]["also"] = ["typing"]
    assert errors(doc) != []


def test_a_string_map_is_laid_over_the_text_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = with_signals(read={"response_map": "OK"})
    del doc["API"]["MarkRead"]["response_rules"]
    assert errors(doc) == []
    file, answer = tmp_path / "chat.json", tmp_path / "answer.txt"
    file.write_text(json.dumps(doc), encoding="utf-8")
    for body, code in (("OK", 0), ("NO", 1)):
        answer.write_text(body, encoding="utf-8")
        argv = ["check", "--response", str(file), "--answer", str(answer), "--request", "MarkRead"]
        assert main(argv) == code
    capsys.readouterr()
