"""match_webhook: one rule of docs/format.md, "Webhook models", per test."""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType
from typing import Any

import pytest
from _webhook_models import definition, model, post_json

from server.engine import (
    DefinitionError,
    EventType,
    InboundEvent,
    MatchResult,
    WebhookParseError,
    WebhookRequest,
    match_webhook,
)

FORM = "application/x-www-form-urlencoded"


def only_event(result: MatchResult) -> InboundEvent:
    assert result.unmatched == ()
    assert len(result.events) == 1
    return result.events[0]


def captures_of(pattern: Any, payload: Any, **model_options: Any) -> dict[str, Any] | None:
    """The captures when ``payload`` matches the one model ``pattern``, else None."""
    result = post_json(definition(model("k", pattern, **model_options)), payload)
    if not result.events:
        return None
    return dict(only_event(result).captures)


# --- dict patterns ----------


def test_every_pattern_key_must_be_present_and_extra_payload_keys_are_ignored() -> None:
    pattern = {"a": "$x$", "b": {"c": "$y$"}}
    assert captures_of(pattern, {"a": "1", "b": {"c": "2", "d": "3"}, "e": {}}) == {
        "x": "1",
        "y": "2",
    }
    assert captures_of(pattern, {"a": "1", "b": {"d": "3"}}) is None
    assert captures_of(pattern, {"a": "1"}) is None


def test_a_dict_pattern_does_not_match_a_non_object() -> None:
    assert captures_of({"a": {"b": "$x$"}}, {"a": ["b"]}) is None
    assert captures_of({"a": {"b": "$x$"}}, {"a": "b"}) is None
    assert captures_of({"a": "$x$"}, [[{"a": 1}]]) is None  # a batch of one list: no object


def test_an_empty_dict_pattern_matches_any_object() -> None:
    assert captures_of({"a": {}}, {"a": {"anything": 1}}) == {}
    assert captures_of({"a": {}}, {"a": 1}) is None


# --- literals ---------


def test_a_literal_is_compared_as_text() -> None:
    pattern = {"n": "2", "flag": "true", "f": "0.5", "s": "x"}
    assert captures_of(pattern, {"n": 2, "flag": True, "f": 0.5, "s": "x"}) == {}
    assert captures_of(pattern, {"n": "2", "flag": "true", "f": "0.5", "s": "x"}) == {}
    assert captures_of(pattern, {"n": 3, "flag": True, "f": 0.5, "s": "x"}) is None
    assert captures_of(pattern, {"n": 2, "flag": False, "f": 0.5, "s": "x"}) is None
    assert captures_of(pattern, {"n": 2, "flag": True, "f": 0.5, "s": "X"}) is None


@pytest.mark.parametrize("value", [None, {"x": "x"}, ["x"], ""])
def test_a_literal_does_not_match_null_an_object_a_list_or_other_text(value: Any) -> None:
    assert captures_of({"s": "x"}, {"s": value}) is None


def test_non_string_literals_in_a_pattern_compare_as_text_too() -> None:
    pattern = {"status": 0, "ok": True, "gone": None}
    assert captures_of(pattern, {"status": "0", "ok": "true", "gone": None}) == {}
    assert captures_of(pattern, {"status": 0, "ok": True, "gone": "null"}) is None


def test_dollar_dollar_is_a_literal_dollar() -> None:
    assert captures_of({"price": "$$5"}, {"price": "$5"}) == {}


# --- captures ----------


def test_a_capture_takes_scalars_as_text() -> None:
    pattern = {"a": "$a$", "b": "$b$", "c": "$c$", "d": "$d$"}
    assert captures_of(pattern, {"a": "x", "b": 12345678901234567890, "c": False, "d": 1.5}) == {
        "a": "x",
        "b": "12345678901234567890",
        "c": "false",
        "d": "1.5",
    }


def test_a_capture_takes_a_list_of_scalars_as_a_tuple_dropping_nulls() -> None:
    assert captures_of({"u": "$url$"}, {"u": ["a", 2, None, True]}) == {"url": ("a", "2", "true")}


def test_null_at_a_capture_is_no_value_but_the_key_counts_as_present() -> None:
    assert captures_of({"a": "$a$", "b": "$b$"}, {"a": None, "b": "x"}) == {"b": "x"}
    assert captures_of({"a": "$a$", "b": "$b$"}, {"b": "x"}) is None


@pytest.mark.parametrize("value", [{"nested": "x"}, [{"nested": "x"}], [["x"]], {}])
def test_an_object_at_a_capture_does_not_match(value: Any) -> None:
    assert captures_of({"a": "$a$"}, {"a": value}) is None


def test_a_property_placeholder_captures_like_any_other_name() -> None:
    defn = definition(model("k", {"key": "$API key$", "to": "$to$"}), properties=("API key",))
    event = only_event(post_json(defn, {"key": "whatever", "to": "1"}))
    assert dict(event.captures) == {"API key": "whatever", "to": "1"}


# --- optional captures ----------


def test_an_optional_capture_may_be_absent() -> None:
    pattern = {"from": "$from$", "caption": "$text?$"}
    assert captures_of(pattern, {"from": "1"}) == {"from": "1"}
    assert captures_of(pattern, {"from": "1", "caption": "hi"}) == {"from": "1", "text": "hi"}
    assert captures_of(pattern, {"from": "1", "caption": None}) == {"from": "1"}
    assert captures_of(pattern, {"from": "1", "caption": {"x": 1}}) is None


# --- mixed strings ----------


def test_a_mixed_string_matches_literal_parts_and_captures_the_rest() -> None:
    assert captures_of({"type": "message.$status$"}, {"type": "message.delivered"}) == {
        "status": "delivered"
    }
    assert captures_of({"type": "message.$status$"}, {"type": "sms.delivered"}) is None
    assert captures_of({"type": "message.$status$"}, {"type": {"x": 1}}) is None
    assert captures_of({"type": "message.$status$"}, {"type": None}) is None


def test_mixed_string_placeholders_are_non_greedy_and_anchored() -> None:
    pattern = {"v": "<$a$-$b$>"}
    assert captures_of(pattern, {"v": "<x-y-z>"}) == {"a": "x", "b": "y-z"}
    assert captures_of(pattern, {"v": "<-->"}) == {"a": "", "b": "-"}
    assert captures_of(pattern, {"v": "<x-y>!"}) is None
    assert captures_of(pattern, {"v": "!<x-y>"}) is None
    assert captures_of(pattern, {"v": "<xy>"}) is None
    assert captures_of({"v": "a$x$a"}, {"v": "a"}) is None  # prefix and suffix cannot overlap


def test_a_mixed_string_reads_a_number_as_text() -> None:
    assert captures_of({"to": "1$rest$"}, {"to": 15551234567}) == {"rest": "5551234567"}


def test_a_mixed_string_does_not_backtrack_quadratically_on_a_long_value() -> None:
    # Three placeholders and a missing final literal: a backtracking regex would need ~n² steps.
    value = "." * 200_000
    assert captures_of({"v": "$a$.$b$.$c$!"}, {"v": value}) is None
    assert captures_of({"v": "$a$.$b$.$c$"}, {"v": value}) == {"a": "", "b": "", "c": value[2:]}


def test_event_key_inside_a_mixed_string_is_the_models_literal() -> None:
    pattern = {"type": "$event_key$.$status$"}
    defn = definition(model("sms", pattern, event_type="messageSent"))
    assert only_event(post_json(defn, {"type": "sms.queued"})).status == "queued"
    assert post_json(defn, {"type": "mms.queued"}).events == ()


# --- list patterns ----------


def test_a_list_pattern_needs_one_matching_element_and_collects_over_all_of_them() -> None:
    pattern = {"media": [{"kind": "image", "url": "$url$"}]}
    payload = {
        "media": [
            {"kind": "image", "url": "a"},
            {"kind": "audio", "url": "skipped"},
            "not an object",
            {"kind": "image", "url": "b"},
        ]
    }
    assert captures_of(pattern, payload) == {"url": ("a", "b")}
    assert captures_of(pattern, {"media": [{"kind": "audio", "url": "x"}]}) is None
    assert captures_of(pattern, {"media": []}) is None
    assert captures_of(pattern, {"media": {"kind": "image", "url": "a"}}) is None


def test_a_list_capture_gives_the_first_as_the_scalar_and_all_as_the_list() -> None:
    pattern = {"from": "$from$", "to": "$to$", "parts": [{"text": "$content$", "url": "$url$"}]}
    payload = {
        "from": "1",
        "to": "2",
        "parts": [{"text": "first", "url": "u1"}, {"text": "second", "url": "u2"}],
    }
    event = only_event(post_json(definition(model("k", pattern, event_type="mms")), payload))
    assert event.text == "first"
    assert event.media_urls == ("u1", "u2")
    assert event.captures["content"] == ("first", "second")


def test_a_list_pattern_of_captures_matches_a_list_of_scalars() -> None:
    assert captures_of({"urls": ["$url$"]}, {"urls": ["a", "b"]}) == {"url": ("a", "b")}
    assert captures_of({"urls": ["$url$"]}, {"urls": "a"}) is None


# --- star keys ----------


def test_a_star_key_collects_prefixed_keys_bare_first_then_in_numeric_order() -> None:
    payload = {
        "MediaUrl10": "ten",
        "MediaUrl2": "two",
        "MediaUrl": "bare",
        "MediaUrl0": "zero",
        "MediaUrlX": "not a number",
        "MediaUrl1a": "not a number either",
        "NumMedia": "4",
    }
    assert captures_of({"MediaUrl*": "$url$"}, payload) == {"url": ("bare", "zero", "two", "ten")}


def test_a_star_key_needs_at_least_one_key() -> None:
    assert captures_of({"MediaUrl*": "$url$", "From": "$from$"}, {"From": "1"}) is None
    assert captures_of({"image*": "$url$"}, {"image2": "b", "image": "a"}) == {"url": ("a", "b")}


def test_a_star_key_survives_absurdly_long_numbers_and_leading_zeros() -> None:
    long_key = "Media" + "9" * 10_000
    payload = {long_key: "last", "Media007": "seven", "Media8": "eight"}
    assert captures_of({"Media*": "$url$"}, payload) == {"url": ("seven", "eight", "last")}


def test_a_star_key_with_a_literal_needs_one_equal_value() -> None:
    assert captures_of({"Tag*": "urgent"}, {"Tag0": "low", "Tag1": "urgent"}) == {}
    assert captures_of({"Tag*": "urgent"}, {"Tag0": "low"}) is None


# --- forms and queries ----------


def test_a_form_key_repeated_in_the_body_is_captured_as_a_list() -> None:
    defn = definition(
        model("in", {"From": "$from$", "To": "$to$", "MediaUrl": "$url$"}, event_type="mms")
    )
    body = b"From=%2B1555&To=%2B1666&MediaUrl=https%3A%2F%2Fa&MediaUrl=https%3A%2F%2Fb"
    request = WebhookRequest(method="POST", content_type=FORM, body=body)
    event = only_event(match_webhook(defn, request))
    assert (event.from_number, event.to_number) == ("+1555", "+1666")
    assert event.media_urls == ("https://a", "https://b")


def test_a_form_literal_and_a_single_media_key() -> None:
    defn = definition(
        model("in", {"SmsStatus": "received", "From": "$from$", "MediaUrl0": "$url$"}, index=0)
    )
    body = b"SmsStatus=received&From=1&MediaUrl0=https%3A%2F%2Fa"
    event = only_event(
        match_webhook(defn, WebhookRequest(method="POST", content_type=FORM, body=body))
    )
    assert event.media_urls == ("https://a",)


def test_a_get_webhook_matches_its_query_parameters() -> None:
    defn = definition(
        model("in", {"msisdn": "$from$", "to": "$to$", "text": "$content$"}, method="GET")
    )
    request = WebhookRequest(
        method="get",
        content_type=None,
        body=b"",
        query=(("msisdn", "447700900000"), ("to", "447700900001"), ("text", "hi there")),
    )
    event = only_event(match_webhook(defn, request))
    assert (event.from_number, event.to_number, event.text) == (
        "447700900000",
        "447700900001",
        "hi there",
    )


def test_the_method_must_equal_and_the_near_miss_says_so() -> None:
    defn = definition(model("in", {"from": "$from$"}, method="POST"))
    request = WebhookRequest(method="GET", content_type=None, body=b"", query=(("from", "1"),))
    result = match_webhook(defn, request)
    assert result.events == ()
    (miss,) = result.unmatched[0].near_misses
    assert miss.reason == "method GET, model wants POST"
    lower = WebhookRequest(method="post", content_type=FORM, body=b"from=1")
    assert only_event(match_webhook(defn, lower)).from_number == "1"


# --- batches and each ----------

MESSAGE = {"type": "sms", "from": "$from$", "to": "$to$", "text": "$content$"}


def test_a_top_level_array_is_a_batch_of_payloads() -> None:
    defn = definition(model("sms", MESSAGE))
    body = [
        {"type": "sms", "from": "1", "to": "9", "text": "a"},
        {"type": "fax", "from": "2", "to": "9", "text": "b"},
        {"type": "sms", "from": "3", "to": "9", "text": "c"},
    ]
    result = post_json(defn, body)
    assert [(e.payload_pointer, e.text) for e in result.events] == [("/0", "a"), ("/2", "c")]
    (unmatched,) = result.unmatched
    assert unmatched.payload_pointer == "/1"
    assert unmatched.near_misses[0].reason == "/type: expected 'sms', got 'fax'"


def test_each_names_a_list_whose_elements_are_payloads() -> None:
    receipt = {"id": "$messageid$", "status": "delivered"}
    defn = definition(
        model("dlr", receipt, event_type="messageDelivered", each="/results"),
        model("whole", {"results": "$status$"}, event_type="messageSent"),
    )
    body = {"results": [{"id": "m1", "status": "delivered"}, {"id": "m2", "status": "delivered"}]}
    result = post_json(defn, body)
    # the plain model cannot capture a list of objects; the batch models produce the events
    assert [(e.payload_pointer, e.provider_message_id) for e in result.events] == [
        ("/results/0", "m1"),
        ("/results/1", "m2"),
    ]
    assert result.unmatched == ()


def test_models_with_each_compete_only_with_models_of_the_same_pointer() -> None:
    defn = definition(
        # very specific, but it only ever sees the whole body
        model("plain", {"id": "$messageid$", "status": "delivered"}, event_type="messageFailed"),
        model("each", {"id": "$messageid$"}, event_type="messageDelivered", each="/items"),
    )
    result = post_json(defn, {"items": [{"id": "a", "status": "delivered"}]})
    assert [(e.model, e.payload_pointer) for e in result.events] == [(1, "/items/0")]


def test_events_come_out_in_order_of_pointer_then_element_index() -> None:
    defn = definition(
        model("z", {"id": "$messageid$"}, event_type="messageSent", each="/zeta"),
        model("a", {"id": "$messageid$"}, event_type="messageDelivered", each="/alpha"),
        model("top", {"kind": "batch"}, event_type="messageFailed"),
    )
    items = [{"id": str(i)} for i in range(12)]
    body = {"kind": "batch", "zeta": items[:2], "alpha": items}
    pointers = [e.payload_pointer for e in post_json(defn, body).events]
    assert pointers == ["", *[f"/alpha/{i}" for i in range(12)], "/zeta/0", "/zeta/1"]


def test_an_unmatched_element_of_a_batch_is_reported_while_the_others_produce_events() -> None:
    defn = definition(model("dlr", {"id": "$messageid$"}, event_type="messageSent", each="/r"))
    result = post_json(defn, {"r": [{"id": "a"}, {"no": "id"}, {"id": "c"}]})
    assert [e.payload_pointer for e in result.events] == ["/r/0", "/r/2"]
    assert [u.payload_pointer for u in result.unmatched] == ["/r/1"]
    assert result.unmatched[0].near_misses[0].reason == "/id: key missing"


def test_a_body_without_the_each_list_is_reported_when_nothing_matched() -> None:
    defn = definition(model("dlr", {"id": "$messageid$"}, event_type="messageSent", each="/r"))
    result = post_json(defn, {"other": []})
    assert result.events == ()
    (unmatched,) = result.unmatched
    assert unmatched.payload_pointer == "/r"
    assert "no list at /r" in unmatched.reason


def test_an_empty_batch_produces_nothing() -> None:
    defn = definition(model("sms", MESSAGE))
    assert post_json(defn, []) == MatchResult(events=(), unmatched=())


def test_each_pointer_escapes_and_array_indices() -> None:
    defn = definition(
        model("dlr", {"id": "$messageid$"}, event_type="messageSent", each="/a~1b/0/c~0d")
    )
    result = post_json(defn, {"a/b": [{"c~d": [{"id": "x"}]}]})
    assert [e.payload_pointer for e in result.events] == ["/a~1b/0/c~0d/0"]


# --- choosing the most specific model ----------


def test_the_most_literal_constraints_wins_over_file_order() -> None:
    defn = definition(
        model("any", {"type": "$event_key$", "from": "$from$", "to": "$to$", "x": "$content$"}),
        model("any", {"type": "$event_key$", "channel": "sms", "from": "$from$"}),
    )
    payload = {"type": "any", "channel": "sms", "from": "1", "to": "2", "x": "t"}
    assert only_event(post_json(defn, payload)).model == 1


def test_on_equal_constraints_the_most_captures_wins() -> None:
    defn = definition(
        model("m", {"type": "$event_key$", "from": "$from$"}),
        model("m", {"type": "$event_key$", "from": "$from$", "to": "$to$"}),
    )
    assert only_event(post_json(defn, {"type": "m", "from": "1", "to": "2"})).model == 1


def test_on_a_full_tie_the_earlier_model_wins() -> None:
    defn = definition(
        model("m", {"type": "$event_key$", "from": "$from$"}),
        model("m", {"type": "$event_key$", "to": "$from$"}),
    )
    assert only_event(post_json(defn, {"type": "m", "from": "1", "to": "2"})).model == 0


def test_optional_captures_count_nothing() -> None:
    defn = definition(
        model("m", {"from": "$from$", "a": "$x?$", "b": "$y?$"}),
        model("m", {"from": "$from$", "to": "$to$"}),
    )
    payload = {"from": "1", "to": "2", "a": "x", "b": "y"}
    assert only_event(post_json(defn, payload)).model == 1


def test_mixed_string_literal_parts_each_count_one_constraint() -> None:
    defn = definition(
        model("m", {"t": "$a$", "u": "x"}),  # one literal
        model("m", {"t": "in.$a$.sms"}),  # two literal parts
    )
    assert only_event(post_json(defn, {"t": "in.1.sms", "u": "x"})).model == 1


def test_a_list_pattern_and_a_star_key_count_their_inner_pattern_once() -> None:
    defn = definition(
        model("m", {"media": [{"kind": "image"}], "s": "$s$"}),  # 1 constraint, 1 capture
        model("m", {"t": "a", "u": "$u$", "v": "$v$"}),  # 1 constraint, 2 captures
        model("m", {"Tag*": "x"}),  # 1 constraint
    )
    payload = {
        "media": [{"kind": "image"}, {"kind": "image"}],
        "s": "1",
        "t": "a",
        "u": "1",
        "v": "2",
        "Tag0": "x",
        "Tag1": "x",
    }
    assert only_event(post_json(defn, payload)).model == 1


# --- event fields ----------


def test_event_fields_come_from_their_captures() -> None:
    pattern = {
        "from": "$from$",
        "to": "$to$",
        "body": "$content$",
        "caption": "$text$",
        "id": "$messageid$",
        "state": "$status$",
        "why": "$error$",
        "extra": "$extension$",
    }
    payload = {
        "from": "+1",
        "to": "+2",
        "body": "hello",
        "caption": "cap",
        "id": 42,
        "state": "failed",
        "why": "blocked",
        "extra": "100",
    }
    event = only_event(post_json(definition(model("k", pattern, event_type="mms")), payload))
    assert event == InboundEvent(
        type=EventType.MMS,
        model=0,
        event_key="k",
        payload_pointer="",
        from_number="+1",
        to_number="+2",
        text="hello",
        media_urls=(),
        provider_message_id="42",
        status="failed",
        error="blocked",
        captures={
            "from": "+1",
            "to": "+2",
            "content": "hello",
            "text": "cap",
            "messageid": "42",
            "status": "failed",
            "error": "blocked",
            "extension": "100",
        },
    )


def test_text_falls_back_to_the_text_capture() -> None:
    pattern = {"body": "$content?$", "caption": "$text$"}
    defn = definition(model("k", pattern))
    assert only_event(post_json(defn, {"caption": "c"})).text == "c"
    assert only_event(post_json(defn, {"caption": "c", "body": "b"})).text == "b"


def test_lone_surrogates_in_json_text_become_replacement_characters() -> None:
    body = b'{"from": "1", "text": "a\\ud800b", "url": ["\\udfff"]}'
    defn = definition(model("k", {"from": "$from$", "text": "$content$", "url": "$url$"}))
    event = only_event(
        match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
    )
    assert event.text == "a\ufffdb"
    assert event.media_urls == ("\ufffd",)
    assert event.text.encode("utf-8")


# --- near misses ----------


def test_near_misses_name_the_closest_models_first_and_why_they_failed() -> None:
    defn = definition(
        model("delivered", {"method": "$event_key$", "params": {"messageid": "$messageid$"}}),
        model("file", {"method": "$event_key$", "params": {"from": "$from$", "url": "$url$"}}),
        model("message", {"method": "$event_key$", "params": {"content": "$content$"}}),
        model("x", {"a": "1", "b": "2", "c": "3"}),
    )
    result = post_json(defn, {"method": "message", "params": {"from": "1"}})
    (unmatched,) = result.unmatched
    assert unmatched.payload_pointer == ""
    first, *rest = unmatched.near_misses
    assert (first.model, first.event_key, first.reason, first.matched_constraints) == (
        2,
        "message",
        "/params/content: key missing",
        1,
    )
    assert len(unmatched.near_misses) == 3
    assert rest[0].model == 0
    assert rest[0].reason == ("/method: expected 'delivered', got 'message' (and 1 more problem)")
    assert "'message' (/Webhook/2) fails: /params/content: key missing" in unmatched.reason
    assert unmatched.reason.startswith("no webhook model matches this payload")


@pytest.mark.parametrize(
    ("pattern", "payload", "reason"),
    [
        ({"a": {"b": "$x$"}}, {"a": []}, "/a: expected an object, got a list"),
        (
            {"a": "$x$"},
            {"a": {"k": 1}},
            "/a: $x$ captures a value or a list of values, got an object",
        ),
        ({"a": ["$x$"]}, {"a": "s"}, "/a: expected a list, got 's'"),
        (
            {"a": ["1"]},
            {"a": ["2", "3"]},
            "no element matches, closest: /a/0: expected '1', got '2'",
        ),
        ({"a": "m.$x$"}, {"a": "n.1"}, "/a: expected text like 'm.$x$', got 'n.1'"),
        ({"M*": "$u$"}, {"N": 1}, "/: no key matches 'M*'"),
        ({"M*": "1"}, {"M0": "2"}, "no 'M*' value matches, closest: /M0: expected '1', got '2'"),
        ({"a/b": "1"}, {"a/b": None}, "/a~1b: expected '1', got null"),
        ({"a": "x" * 60}, {"a": "y"}, f"/a: expected '{'x' * 39}…', got 'y'"),
    ],
)
def test_near_miss_reasons(pattern: Any, payload: Any, reason: str) -> None:
    (unmatched,) = post_json(definition(model("k", pattern)), payload).unmatched
    assert unmatched.near_misses[0].reason == reason


def test_a_non_object_payload_is_unmatched_with_a_reason() -> None:
    (unmatched,) = post_json(definition(model("k", {"a": "$a$"})), [5]).unmatched
    assert unmatched.payload_pointer == "/0"
    assert unmatched.near_misses[0].reason == "/: expected an object, got '5'"


def test_a_definition_without_webhook_models_matches_nothing_and_says_so() -> None:
    result = post_json(definition(), {"a": 1})
    assert result.events == ()
    assert result.unmatched[0].reason == "the integration defines no webhook models"


# --- errors and compilation ----------


def test_a_body_that_cannot_be_parsed_raises_webhook_parse_error() -> None:
    request = WebhookRequest(method="POST", content_type="application/json", body=b"{nope")
    with pytest.raises(WebhookParseError):
        match_webhook(definition(model("k", {"a": "$a$"})), request)


def test_a_pattern_nested_beyond_reason_is_a_definition_error_not_a_crash() -> None:
    pattern: Any = "$from$"
    for _ in range(5000):
        pattern = MappingProxyType({"a": pattern})
    defn = definition(model("k", {}))
    deep = dataclasses.replace(defn.webhooks[0], parameters=pattern)
    with pytest.raises(DefinitionError) as caught:
        post_json(dataclasses.replace(defn, webhooks=(deep,)), {"a": 1})
    assert caught.value.problems[0].pointer == "/Webhook/0/request_parameters"


def test_each_definition_object_gets_its_own_compiled_models() -> None:
    # Definitions created and dropped in turn often reuse the same memory address (and id());
    # the compiled-model cache must never hand one definition another's models.
    for i in range(300):
        defn = definition(model(f"k{i}", {"type": "$event_key$", "n": "$content$"}))
        body = json.dumps({"type": f"k{i}", "n": str(i)}).encode()
        event = only_event(
            match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
        )
        assert (event.event_key, event.text) == (f"k{i}", str(i))
        del defn


# -- (ext) keys that must be absent ---------------------------------------------------------------

_INBOUND = {"MessageSid": "$messageid$", "From": "$from$", "To": "$to$", "Body": "$content$"}


def test_a_model_does_not_match_a_payload_that_has_an_absent_key() -> None:
    inbound = model("inbound", _INBOUND, absent=("/MessageStatus",))
    body = {"MessageSid": "M1", "From": "+1", "To": "+2", "Body": "hi"}
    assert only_event(post_json(definition(inbound), body)).text == "hi"

    callback = post_json(definition(inbound), {**body, "MessageStatus": "queued"})
    assert callback.events == ()
    (miss,) = callback.unmatched[0].near_misses
    assert miss.reason == "/MessageStatus: must be absent"
    # A key present with null is present (docs/format.md, "Webhook models": null is no value,
    # the key still counts).
    assert post_json(definition(inbound), {**body, "MessageStatus": None}).events == ()


def test_an_absent_pointer_reaches_into_nested_objects() -> None:
    inbound = model("inbound", {"data": {"text": "$content$"}}, absent=("/data/status",))
    assert post_json(definition(inbound), {"data": {"text": "x", "status": "sent"}}).events == ()
    assert only_event(post_json(definition(inbound), {"data": {"text": "x"}})).text == "x"


def test_each_absent_key_counts_as_a_constraint_when_models_compete() -> None:
    plain = model("plain", _INBOUND)
    strict = model("strict", _INBOUND, absent=("/MessageStatus",))
    body = {"MessageSid": "M1", "From": "+1", "To": "+2", "Body": "hi"}
    assert only_event(post_json(definition(plain, strict), body)).event_key == "strict"


# -- (ext) request headers -------------------------------------------------------------------------

_GUID = {"X-Sms-Guid": "$messageid$"}
_SMS = {"type": "sms", "from": "$from$", "to": "$to$", "message": "$content$"}
_SMS_BODY = {"type": "sms", "from": "2065551234", "to": "2065551212", "message": "hi"}


def test_a_header_capture_takes_the_value_of_the_header_named_in_any_case() -> None:
    inbound = model("sms", _SMS, headers=_GUID)
    for name in ("X-Sms-Guid", "x-sms-guid", "X-SMS-GUID"):
        result = post_json(definition(inbound), _SMS_BODY, headers=((name, "4ed4cec6"),))
        assert only_event(result).provider_message_id == "4ed4cec6"


def test_a_required_header_that_is_missing_or_different_fails_the_model_and_says_so() -> None:
    inbound = model("sms", _SMS, headers=_GUID)
    missing = post_json(definition(inbound), _SMS_BODY)
    assert missing.events == ()
    (miss,) = missing.unmatched[0].near_misses
    assert miss.reason == "header X-Sms-Guid: missing"

    typed = model("sms", _SMS, headers={"X-Event": "message.received"})
    other = post_json(definition(typed), _SMS_BODY, headers=(("x-event", "message.failed"),))
    assert other.events == ()
    (miss,) = other.unmatched[0].near_misses
    assert miss.reason == "header X-Event: expected 'message.received', got 'message.failed'"


def test_an_optional_header_capture_may_be_absent() -> None:
    inbound = model("sms", _SMS, headers={"X-Sms-Guid": "$messageid?$"})
    assert only_event(post_json(definition(inbound), _SMS_BODY)).provider_message_id is None


def test_a_repeated_header_is_one_value_joined_by_commas() -> None:
    inbound = model("sms", _SMS, headers={"X-Tag": "$status$"})
    result = post_json(definition(inbound), _SMS_BODY, headers=(("X-Tag", "a"), ("x-tag", "b")))
    assert only_event(result).status == "a, b"


def test_a_header_literal_is_a_constraint_that_tells_models_apart() -> None:
    # Same body, the event kind only in a header: the literal decides, whatever the file order.
    generic = model("any", _SMS)
    by_header = model("received", _SMS, headers={"X-Event": "received"})
    result = post_json(
        definition(generic, by_header), _SMS_BODY, headers=(("X-Event", "received"),)
    )
    assert only_event(result).event_key == "received"
    assert only_event(post_json(definition(generic, by_header), _SMS_BODY)).event_key == "any"


def test_a_name_captured_in_body_and_header_keeps_the_body_value() -> None:
    both = model("sms", {**_SMS, "id": "$messageid$"}, headers=_GUID)
    body = {**_SMS_BODY, "id": "from-body"}
    result = post_json(definition(both), body, headers=(("X-Sms-Guid", "from-header"),))
    assert only_event(result).provider_message_id == "from-body"


def test_header_captures_apply_to_every_payload_of_a_batch() -> None:
    receipt = model(
        "dlr", {"id": "$messageid$"}, event_type="messageDelivered", headers={"X-State": "$status$"}
    )
    result = post_json(
        definition(receipt), [{"id": "1"}, {"id": "2"}], headers=(("X-State", "delivered"),)
    )
    assert [(e.provider_message_id, e.status) for e in result.events] == [
        ("1", "delivered"),
        ("2", "delivered"),
    ]


def test_json_numbers_are_decimal_text_as_in_response_maps() -> None:
    # docs/format.md, "Webhook models": 2.0 compares as "2" and an id sent as 1.5e3 is "1500", as
    # map_response reads it
    receipt = model("dlr", {"status": "2", "id": "$messageid$"}, event_type="messageDelivered")
    event = only_event(post_json(definition(receipt), {"status": 2.0, "id": 1.5e3}))
    assert event.provider_message_id == "1500"
    assert captures_of({"rate": "$x$"}, {"rate": 0.0075}) == {"x": "0.0075"}


def test_an_each_element_no_model_matches_is_reported_even_when_the_body_gave_an_event() -> None:
    # docs/format.md, "Unmatched payloads": an element of an `each` list that no model matches
    # is kept even when the rest of the body gave events
    plain = model("sent", {"event": "sent", "id": "$messageid$"}, event_type="messageSent")
    each = model(
        "dlr", {"messageId": "$messageid$", "s": "DELIVERED"}, event_type="messageDelivered",
        each="/results",
    )  # fmt: skip
    body = {"event": "sent", "id": "z", "results": [{"messageId": "a", "s": "UNKNOWN"}]}
    result = post_json(definition(plain, each), body)
    assert [e.provider_message_id for e in result.events] == ["z"]
    assert [u.payload_pointer for u in result.unmatched] == ["/results/0"]
    # A batch body with no plain model matching it is not also reported as a plain payload.
    batch = post_json(definition(plain, each), {"results": [{"messageId": "a", "s": "DELIVERED"}]})
    assert (len(batch.events), batch.unmatched) == (1, ())
