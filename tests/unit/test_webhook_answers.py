"""(ext) Webhook answers (docs/format.md, "Answers"): loading, which answer a request gets, and
what ``msgbridge check`` says about an answer that could not work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.engine import (
    ANSWER_BODY_MAX_BYTES,
    DEFAULT_ANSWER,
    WebhookAnswer,
    WebhookRequest,
    check_definition,
    choose_answer,
    load_definition,
    match_webhook,
)
from server.engine._answer_checks import is_textual

DEFINITIONS = Path(__file__).resolve().parents[1] / "fixtures" / "definitions"


def template() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEFINITIONS / "seed" / "complete_example.json").read_text())
    return doc


def _model(kind: str, answer: dict[str, Any] | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "event_key": kind,
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "kind": "$event_key$",
            "from": "$from$",
            "to": "$to$",
            "text": "$content$",
        },
    }
    if answer is not None:
        model["answer"] = answer
    return model


def _doc(*models: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc = template()
    doc["Webhook"] = list(models)
    doc.update(top)
    return doc


def _errors(doc: dict[str, Any]) -> list[str]:
    return [str(p) for p in check_definition(doc) if p.severity == "error"]


def _request(body: object) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        content_type="application/json",
        body=json.dumps(body).encode(),
        query=(),
        headers=(),
    )


def _payload(kind: str) -> dict[str, str]:
    return {"kind": kind, "from": "+15557654321", "to": "+15550001111", "text": "hi"}


# -- loading --------------------------------------------------------------------------------------


def test_a_definition_without_answers_gets_the_default() -> None:
    definition = load_definition(_doc(_model("a")))
    assert definition.webhooks[0].answer is None
    assert definition.answer_matched is None and definition.answer_unmatched is None
    result = match_webhook(definition, _request(_payload("a")))
    assert choose_answer(definition, result) == DEFAULT_ANSWER
    assert (
        WebhookAnswer(status=200, content_type="text/plain; charset=utf-8", body="")
        == DEFAULT_ANSWER
    )


def test_keys_left_out_keep_the_defaults() -> None:
    definition = load_definition(
        _doc(
            _model("a", {"body": "ACK/Jasmin"}),
            WebhookAnswer={"matched": {"status": 204}, "unmatched": {"content_type": "text/xml"}},
        )
    )
    assert definition.webhooks[0].answer == WebhookAnswer(body="ACK/Jasmin")
    assert definition.answer_matched == WebhookAnswer(status=204)
    assert definition.answer_unmatched == WebhookAnswer(content_type="text/xml")


# -- which answer wins ----------------------------------------------------------------------------

JSON_ACK = {"status": 202, "content_type": "application/json", "body": '{"ok": true}'}
TWIML = {"content_type": "text/xml", "body": "<Response/>"}
PLAIN = {"content_type": "text/plain", "body": "ACK"}


@pytest.fixture
def answering() -> Any:
    return load_definition(
        _doc(
            _model("acked", JSON_ACK),
            _model("plain"),
            _model("other", PLAIN),
            WebhookAnswer={"matched": TWIML, "unmatched": {"body": "kept"}},
        )
    )


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        (_payload("acked"), WebhookAnswer(**JSON_ACK)),  # the model's own answer
        (_payload("plain"), WebhookAnswer(**TWIML)),  # no answer of its own: the definition's
        ({"kind": "nothing"}, WebhookAnswer(body="kept")),  # nothing matched
        # several events: the first whose model has an answer, in the request's order
        ([_payload("plain"), _payload("other"), _payload("acked")], WebhookAnswer(**PLAIN)),
        ([_payload("acked"), _payload("other")], WebhookAnswer(**JSON_ACK)),
        # some matched, some not: the request matched
        ([{"kind": "nothing"}, _payload("plain")], WebhookAnswer(**TWIML)),
    ],
)
def test_which_answer_a_request_gets(answering: Any, body: object, wanted: WebhookAnswer) -> None:
    result = match_webhook(answering, _request(body))
    assert choose_answer(answering, result) == wanted


def test_unmatched_without_an_unmatched_answer_gets_the_default() -> None:
    definition = load_definition(_doc(_model("a"), WebhookAnswer={"matched": TWIML}))
    result = match_webhook(definition, _request({"kind": "nothing"}))
    assert choose_answer(definition, result) == DEFAULT_ANSWER


# -- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_statuses_are_allowed(status: int) -> None:
    assert _errors(_doc(_model("a", {"status": status}))) == []


@pytest.mark.parametrize("status", [100, 199, 301, 400, 404, 500, 503])
def test_a_status_that_is_not_2xx_is_an_error(status: int) -> None:
    errors = _errors(_doc(_model("a", {"status": status})))
    assert len(errors) == 1
    assert errors[0].startswith("/Webhook/0/answer/status: an answer's status must be 2xx")


def test_the_definition_level_answers_are_checked_too() -> None:
    errors = _errors(
        _doc(_model("a"), WebhookAnswer={"matched": {"status": 500}, "unmatched": {"status": 302}})
    )
    assert [e.split(":")[0] for e in errors] == [
        "/WebhookAnswer/matched/status",
        "/WebhookAnswer/unmatched/status",
    ]


def test_the_body_bound_counts_utf8_bytes() -> None:
    fits = "é" * (ANSWER_BODY_MAX_BYTES // 2)
    assert _errors(_doc(_model("a", {"body": fits}))) == []
    errors = _errors(_doc(_model("a", {"body": fits + "x"})))
    assert errors == [
        f"/Webhook/0/answer/body: an answer's body is at most {ANSWER_BODY_MAX_BYTES} bytes "
        f"of UTF-8, not {ANSWER_BODY_MAX_BYTES + 1}"
    ]


@pytest.mark.parametrize("status", [204, 205])
def test_a_body_with_a_status_that_has_none_is_an_error(status: int) -> None:
    errors = _errors(_doc(_model("a", {"status": status, "body": "x"})))
    assert errors == [
        f"/Webhook/0/answer/body: a {status} answer has no body: leave body out or use 200"
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/xml; charset=utf-8",
        "TEXT/HTML",
        "application/json",
        "application/xml",
        "application/problem+json",
        "application/soap+xml; charset=utf-8",
    ],
)
def test_textual_content_types_are_allowed(content_type: str) -> None:
    assert is_textual(content_type)
    assert _errors(_doc(_model("a", {"content_type": content_type}))) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "application/octet-stream",
        "text",
        "text/plain\r\nSet-Cookie: a=b",
        "text/plain\nX: y",
        "text/plain; charset=utf-8\x00",
        "/plain",
        "text/",
    ],
)
def test_other_content_types_are_errors(content_type: str) -> None:
    assert not is_textual(content_type)
    errors = _errors(_doc(_model("a", {"content_type": content_type})))
    assert len(errors) == 1
    assert errors[0].startswith("/Webhook/0/answer/content_type: an answer's content_type must")


@pytest.mark.parametrize(
    ("answer", "pointer"),
    [
        ({}, "/Webhook/0/answer"),
        ({"status": "200"}, "/Webhook/0/answer/status"),
        ({"status": 200.5}, "/Webhook/0/answer/status"),
        ({"headers": {"X-A": "b"}}, "/Webhook/0/answer/headers"),
        ({"body": 1}, "/Webhook/0/answer/body"),
        ({"content_type": ""}, "/Webhook/0/answer/content_type"),
    ],
)
def test_the_schema_refuses_malformed_answers(answer: dict[str, Any], pointer: str) -> None:
    errors = _errors(_doc(_model("a", answer)))
    assert errors and all(e.startswith(f"{pointer}:") for e in errors), errors


def test_the_schema_refuses_a_malformed_webhook_answer() -> None:
    assert _errors(_doc(_model("a"), WebhookAnswer={}))[0].startswith("/WebhookAnswer:")
    errors = _errors(_doc(_model("a"), WebhookAnswer={"matched": TWIML, "failed": TWIML}))
    assert errors and errors[0].startswith("/WebhookAnswer")


def test_a_dollar_in_a_body_is_literal_not_a_placeholder() -> None:
    definition = load_definition(_doc(_model("a", {"body": "costs $5 $to$"})))
    assert definition.webhooks[0].answer == WebhookAnswer(body="costs $5 $to$")


def test_what_looks_like_a_placeholder_in_a_body_is_warned_about() -> None:
    problems = check_definition(_doc(_model("a", {"body": "got $messageid$"})))
    assert [(p.severity, str(p)) for p in problems] == [
        (
            "warning",
            "/Webhook/0/answer/body: an answer's body takes no placeholders: $messageid$ is "
            "sent as written",
        )
    ]
    assert check_definition(_doc(_model("a", {"body": "costs $5"}))) == ()
