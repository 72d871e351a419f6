"""(ext) Optional keys in webhook patterns: ``"context?": {...}`` (docs/format.md, "Webhook
models", "Choosing a model"), matched, ranked and checked."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from _webhook_models import definition, model, post_json

from server.engine import check_definition

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"

QUOTED = {"from": "$from$", "text": {"body": "$text$"}, "context?": {"id": "$quoted_id$"}}


def captures_of(pattern: Any, payload: Any) -> dict[str, Any] | None:
    result = post_json(definition(model("k", pattern)), payload)
    if not result.events:
        return None
    (event,) = result.events
    return dict(event.captures)


def test_an_optional_object_may_be_absent_or_null_and_then_captures_nothing() -> None:
    base = {"from": "1", "text": {"body": "hi"}}
    assert captures_of(QUOTED, base) == {"from": "1", "text": "hi"}
    assert captures_of(QUOTED, {**base, "context": None}) == {"from": "1", "text": "hi"}


def test_an_optional_object_that_is_there_must_match_and_gives_its_captures() -> None:
    base = {"from": "1", "text": {"body": "hi"}}
    assert captures_of(QUOTED, {**base, "context": {"id": "q1", "from": "2"}}) == {
        "from": "1",
        "text": "hi",
        "quoted_id": "q1",
    }
    assert captures_of(QUOTED, {**base, "context": {"forwarded": True}}) is None
    assert captures_of(QUOTED, {**base, "context": "q1"}) is None
    tolerant = {**QUOTED, "context?": {"id": "$quoted_id?$"}}
    assert captures_of(tolerant, {**base, "context": {"forwarded": True}}) == {
        "from": "1",
        "text": "hi",
    }


def test_an_optional_key_may_hold_any_pattern() -> None:
    pattern = {"from": "$from$", "kind?": "image", "media?": [{"url": "$url$"}]}
    assert captures_of(pattern, {"from": "1"}) == {"from": "1"}
    assert captures_of(pattern, {"from": "1", "kind": "video"}) is None
    assert captures_of(pattern, {"from": "1", "media": [{"url": "u"}]}) == {
        "from": "1",
        "url": ("u",),
    }


def test_an_optional_star_key_may_match_no_key() -> None:
    pattern = {"From": "$from$", "MediaUrl*?": "$url$"}
    assert captures_of(pattern, {"From": "1"}) == {"from": "1"}
    assert captures_of(pattern, {"From": "1", "MediaUrl0": "a", "MediaUrl1": "b"}) == {
        "from": "1",
        "url": ("a", "b"),
    }


def test_a_lone_question_mark_is_a_plain_key() -> None:
    assert captures_of({"?": "$x$"}, {"?": "1"}) == {"x": "1"}
    assert captures_of({"?": "$x$"}, {}) is None


def test_an_optional_keys_literals_and_captures_count_nothing_in_the_ranking() -> None:
    defn = definition(
        model("m", {"from": "$from$", "context?": {"kind": "quoted", "id": "$q$"}}),
        model("m", {"from": "$from$", "to": "$to$"}),
    )
    payload = {"from": "1", "to": "2", "context": {"kind": "quoted", "id": "9"}}
    (event,) = post_json(defn, payload).events
    assert event.model == 1


def test_a_present_optional_object_is_explained_when_it_fails() -> None:
    (unmatched,) = post_json(
        definition(model("k", QUOTED)), {"from": "1", "text": {"body": "b"}, "context": {}}
    ).unmatched
    assert unmatched.near_misses[0].reason == "/context/id: key missing"


# --- msgbridge check ----------

MESSAGE = {
    "event_key": "message",
    "event_type": "message",
    "request_method": "POST",
    "request_parameters": {"from": "$from$", "to": "$to$", "text": "$content$"},
}


def _problems(parameters: dict[str, Any], **options: Any) -> list[str]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["Webhook"] = [{**MESSAGE, "request_parameters": parameters, **options}]
    return [f"{p.severity} {p}" for p in check_definition(doc)]


def test_a_definition_with_optional_keys_passes() -> None:
    parameters = {"from": "$from$", "to": "$to$", "text": "$content$", "ctx?": {"id": "$x$"}}
    assert _problems(parameters, keep=["x"]) == []


def test_a_capture_under_an_optional_key_does_not_count_for_the_event() -> None:
    found = _problems({"from": "$from$", "to": "$to$", "body?": {"text": "$content$"}})
    assert found == [
        'error /Webhook/0/request_parameters: a model of event_type "message" must capture '
        "$from$, $to$ and $content$ (or $text$); this one does not capture $content$ (or $text$) "
        "(an optional $x?$ capture does not count)"
    ]


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        (
            {"ctx": {"id": "$x?$"}, "ctx?": {"id": "$y?$"}},
            'error /Webhook/0/request_parameters/ctx?: "ctx?" and "ctx" name the same key '
            "'ctx': keep one (with \"?\" when the payload may leave it out)",
        ),
        (
            {"ctx??": "$x?$"},
            'error /Webhook/0/request_parameters/ctx??: "ctx??": one "?" makes a key optional; '
            "a pattern cannot name a key that ends in ?",
        ),
    ],
)
def test_a_key_written_twice_or_with_two_question_marks_is_refused(
    parameters: dict[str, Any], problem: str
) -> None:
    base = {"from": "$from$", "to": "$to$", "text": "$content$"}
    assert problem in _problems({**base, **parameters}, keep=["x", "y"])
