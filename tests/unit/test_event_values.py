"""(ext) Built values, extra fields and validation patterns of webhook models (docs/format.md,
"Built values, extra fields and validation patterns"): the pattern language, the matcher and the
checker, through load_definition and match_webhook."""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any

import pytest

from server.engine import (
    DefinitionError,
    EventType,
    WebhookRequest,
    check_definition,
    load_definition,
    match_webhook,
)
from server.engine._value_patterns import PatternSyntaxError, compile_value_pattern


def doc(*models: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "Test",
        "name": "Test",
        "class": "sms",
        "properties": ["token"],
        "auth": {"type": "Bearer", "token": "$token$"},
        "API": {
            "SendMessage": {
                "request_method": "POST",
                "request_url": "https://api.example.com/messages",
                "request_parameters": {"from": "$from$", "to": "$to$", "text": "$content$"},
                "response_map": {"id": "$messageid$"},
            }
        },
        "Webhook": list(models),
    }


def location_model(**extra: Any) -> dict[str, Any]:
    return {
        "event_key": "location",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "from": "$from$",
            "to": "$to$",
            "lat": "$lat$",
            "long": "$long$",
            "name": "$contact_name?$",
            "parts": "$segments?$",
        },
        "build": {"text": "geo:$lat$,$long$"},
        "keep": ["contact_name", "segments"],
        "patterns": {"lat": "^-?[0-9.]+$", "long": "^-?[0-9.]+$"},
        **extra,
    }


def post(definition: Any, payload: Any) -> Any:
    request = WebhookRequest(
        method="POST", content_type="application/json", body=json.dumps(payload).encode()
    )
    return match_webhook(definition, request)


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(document) if p.severity == "error"]


# --- the pattern language ------------------------------------------------------------------------

AGREES_WITH_RE = [
    "^-?[0-9.]+$",
    "a*b?c+",
    "[a-c]{2,4}x?",
    r"\d{3}-?\d*",
    "a?a?a?aaa",
    "x*y*z*",
    "[^0-9]+",
    "a{0,3}b{1,}c?",
    ".*a.?",
    r"\w+\s?\w*",
    "a?b?c?d?",
    r"[\d.,-]+",
    r"\.\$\^",
]


@pytest.mark.parametrize("source", AGREES_WITH_RE)
def test_a_pattern_matches_what_a_regex_fullmatch_would(source: str) -> None:
    pattern = compile_value_pattern(source)
    stripped = source.removeprefix("^")
    stripped = (
        stripped[:-1] if stripped.endswith("$") and not stripped.endswith("\\$") else stripped
    )
    regex = re.compile(stripped)
    rng = random.Random(source)
    for length in range(8):
        for _ in range(200):
            value = "".join(rng.choice("abcxyz09.,-_ $^") for _ in range(length))
            assert pattern.matches(value) == bool(regex.fullmatch(value)), value


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("(a)", "a group"),
        ("a|b", "an alternation"),
        ("a**", "one quantifier"),
        ("a+?", "one quantifier"),
        (r"\1", "back-references"),
        ("[a", "not closed"),
        ("a{2,1}", "m is less than n"),
        ("a{65}", "at most 64"),
        ("*a", "repeats nothing"),
        ("a$b", "whole value"),
        ("[z-a]", "backwards"),
        ("a{1,x}", "is not {n}"),
        ("x" * 257, "at most 256 characters"),
        ("a{64}" * 5, "at most 256 atoms"),
    ],
)
def test_a_pattern_outside_the_language_is_refused_with_the_reason(source: str, says: str) -> None:
    with pytest.raises(PatternSyntaxError, match=re.escape(says)):
        compile_value_pattern(source)


def test_matching_is_linear_even_for_a_pattern_that_makes_a_regex_backtrack() -> None:
    # a?{64}a{64} over "a" * n is the classic exponential case of a backtracking engine
    pattern = compile_value_pattern("a?" * 64 + "a" * 64 + "b")
    started = time.perf_counter()
    assert not pattern.matches("a" * 200_000)
    assert time.perf_counter() - started < 5


# --- the matcher ---------------------------------------------------------------------------------


def test_an_event_field_is_built_from_several_captures_and_other_captures_are_kept() -> None:
    definition = load_definition(doc(location_model()))
    payload = {"from": "+1", "to": "+2", "lat": "52.5", "long": "-13.4", "name": "Ann", "parts": 2}
    (event,) = post(definition, payload).events
    assert event.type is EventType.MESSAGE
    assert event.text == "geo:52.5,-13.4"
    assert dict(event.fields) == {"contact_name": "Ann", "segments": "2"}
    assert "lat" not in event.fields  # only what keep names is kept


def test_a_kept_capture_without_a_value_is_left_out() -> None:
    definition = load_definition(doc(location_model()))
    (event,) = post(definition, {"from": "+1", "to": "+2", "lat": "1", "long": "2"}).events
    assert dict(event.fields) == {}


def test_a_template_with_a_missing_capture_has_no_value_never_a_partial_text() -> None:
    model = {
        "event_key": "k",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "from": "$from$",
            "to": "$to$",
            "body": "$content$",
            "first": "$first?$",
            "last": "$last?$",
        },
        "build": {"full_name": "$first$ $last$"},
        "keep": ["full_name"],
    }
    definition = load_definition(doc(model))
    base = {"from": "+1", "to": "+2", "body": "hi"}
    (both,) = post(definition, {**base, "first": "Ann", "last": "Lee"}).events
    assert dict(both.fields) == {"full_name": "Ann Lee"}
    (one,) = post(definition, {**base, "first": "Ann"}).events
    assert dict(one.fields) == {}
    (null,) = post(definition, {**base, "first": "Ann", "last": None}).events
    assert dict(null.fields) == {}


def test_a_built_event_field_replaces_the_capture_of_its_name() -> None:
    model = {
        "event_key": "k",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {"from": "$from$", "to": "$to$", "body": "$content$"},
        "build": {"from": "+$from$", "status": "received"},
    }
    definition = load_definition(doc(model))
    (event,) = post(definition, {"from": "4915", "to": "+2", "body": "hi"}).events
    assert event.from_number == "+4915"
    assert event.status == "received"


def test_a_kept_value_is_cut_and_a_list_keeps_its_first_element() -> None:
    model = {
        "event_key": "k",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "from": "$from$",
            "to": "$to$",
            "body": "$content$",
            "note": "$note$",
            "tags": ["$tag$"],
        },
        "keep": ["note", "tag"],
    }
    definition = load_definition(doc(model))
    payload = {"from": "+1", "to": "+2", "body": "hi", "note": "x" * 5000, "tags": ["a", "b"]}
    (event,) = post(definition, payload).events
    assert event.fields["note"] == "x" * 1024
    assert event.fields["tag"] == "a"


def test_a_value_that_fails_its_pattern_goes_to_the_next_model() -> None:
    loose = {
        "event_key": "plain",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {"from": "$from$", "to": "$to$", "lat": "$content$"},
    }
    definition = load_definition(doc(location_model(), loose))
    payload = {"from": "+1", "to": "+2", "lat": "north", "long": "2"}
    (event,) = post(definition, payload).events
    assert event.event_key == "plain"
    assert event.text == "north"


def test_a_value_that_fails_its_pattern_is_kept_as_unmatched_with_the_reason() -> None:
    definition = load_definition(doc(location_model()))
    result = post(definition, {"from": "+1", "to": "+2", "lat": "1", "long": "2;drop"})
    assert result.events == ()
    (unmatched,) = result.unmatched
    assert "$long$ '2;drop' does not match its pattern '^-?[0-9.]+$'" in unmatched.reason


def test_every_element_of_a_list_capture_is_tested() -> None:
    model = {
        "event_key": "k",
        "event_type": "mms",
        "request_method": "POST",
        "request_parameters": {"from": "$from$", "to": "$to$", "media": ["$url$"]},
        "patterns": {"url": "^https://.*$"},
    }
    definition = load_definition(doc(model))
    base = {"from": "+1", "to": "+2"}
    assert post(definition, {**base, "media": ["https://a", "https://b"]}).events
    assert not post(definition, {**base, "media": ["https://a", "http://b"]}).events


# --- the checker ---------------------------------------------------------------------------------


def test_a_well_formed_model_has_no_problems() -> None:
    assert problems(doc(location_model())) == []


def test_a_template_naming_a_capture_the_model_never_makes_is_refused() -> None:
    found = problems(doc(location_model(build={"text": "geo:$lat$,$lng$"})))
    assert (
        "/Webhook/0/build/text",
        "the model never captures $lng$: a built value reads the captures of its own model",
    ) in found


def test_a_filter_or_optional_mark_in_a_template_is_refused() -> None:
    found = problems(doc(location_model(build={"text": "$lat|ucs2_hex$ $long?$"})))
    assert [m for at, m in found if at == "/Webhook/0/build/text" and "plainly" in m]
    assert len([m for at, m in found if "plainly" in m]) == 2


def test_a_pattern_for_an_unknown_capture_is_refused() -> None:
    found = problems(doc(location_model(patterns={"latitude": "^[0-9]+$"})))
    assert [m for at, m in found if at == "/Webhook/0/patterns/latitude" and "never" in m]


@pytest.mark.parametrize("source", ["(a|b)+", "^[0-9+$", "a++"])
def test_a_pattern_that_is_not_valid_or_not_linear_is_refused(source: str) -> None:
    found = problems(doc(location_model(patterns={"lat": source})))
    assert [m for at, m in found if at == "/Webhook/0/patterns/lat" and "not a valid" in m]


def test_keep_names_only_extra_captures_of_its_model() -> None:
    found = dict(problems(doc(location_model(keep=["from", "nickname", "segments"]))))
    assert "one of the event's own fields" in found["/Webhook/0/keep/0"]
    assert "neither captures nor builds $nickname$" in found["/Webhook/0/keep/1"]
    assert "/Webhook/0/keep/2" not in found


def test_a_built_extra_field_that_is_not_kept_is_refused() -> None:
    found = dict(problems(doc(location_model(build={"text": "$lat$", "where": "$long$"}))))
    assert "not in keep" in found["/Webhook/0/build/where"]


def test_a_capture_used_nowhere_is_still_an_unknown_placeholder() -> None:
    model = location_model()
    model["request_parameters"] = {**model["request_parameters"], "extra": "$typo$"}
    found = problems(doc(model))
    assert [m for at, m in found if "unknown placeholder $typo$" in m]


def test_a_text_built_from_optional_captures_does_not_count_as_captured() -> None:
    model = location_model(build={"text": "$contact_name$"})
    found = problems(doc(model))
    assert [m for at, m in found if at == "/Webhook/0/request_parameters" and "must capture" in m]


def test_keep_is_bounded_by_the_schema() -> None:
    model = location_model(keep=[f"k{i}" for i in range(33)])
    with pytest.raises(DefinitionError):
        load_definition(doc(model))


def warnings(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(document) if p.severity == "warning"]


@pytest.mark.parametrize(
    ("source", "refused"),
    [("^\\+?[0-9]+$", "A0PNCHHK2"), ("^\\+[0-9]{10,15}$", "12345"), ("[A-Z0-9]+", "+15551234567")],
)
def test_a_pattern_on_an_address_that_refuses_some_shape_is_warned_of(
    source: str, refused: str
) -> None:
    found = dict(warnings(doc(location_model(patterns={"from": source}))))
    assert f"shaped like {refused!r}" in found["/Webhook/0/patterns/from"]
    assert problems(doc(location_model(patterns={"from": source}))) == []


def test_a_pattern_on_an_address_that_admits_every_shape_is_not_warned_of() -> None:
    found = warnings(doc(location_model(patterns={"to": "^\\+?[0-9A-Za-z ]{1,32}$"})))
    assert [at for at, _ in found if at.startswith("/Webhook/0/patterns")] == []
