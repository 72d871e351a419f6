"""(ext) Value filters (docs/format.md, "Value filters"): each filter on ordinary and odd values,
their grammar and bounds, in request templates (chained with an encoding) and in webhook models
(after decode, before patterns and build), and every rule of their check."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from _request_templates import definition, request
from test_event_values import doc, problems

from server.engine import (
    WebhookRequest,
    load_definition,
    match_webhook,
    render_request,
)
from server.engine._filters import (
    MAX_MAP_ENTRIES,
    FilterSyntaxError,
    ValueFilter,
    apply_value_filter,
    parse_value_filter,
)
from server.engine._placeholders import MAX_FILTER_TEXT, has_stray_dollar, sole_placeholder


def run(text: str, value: str | None) -> str | None:
    parsed = parse_value_filter(text)
    assert parsed is not None
    return apply_value_filter(parsed, value)


# --- each filter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value", "result"),
    [
        ("trim_suffix:.null", "DELIVERED.null", "DELIVERED"),
        ("trim_suffix:.null", "FAILED.EXPIRED", "FAILED.EXPIRED"),  # no such suffix: as it is
        ("trim_suffix:.null", ".null", ""),
        ("trim_suffix:.null", "x.null.null", "x.null"),  # once
        ("trim_suffix:.null", "", ""),
        ("trim_prefix:sms-", "sms-42", "42"),
        ("trim_prefix:sms-", "mms-42", "mms-42"),
        ("trim_prefix:sms-", "sms-", ""),
        ("part:.:0", "FAILED.EXPIRED", "FAILED"),
        ("part:.:1", "FAILED.EXPIRED", "EXPIRED"),
        ("part:.:-1", "a.b.c", "c"),
        ("part:.:-2", "a.b.c", "b"),
        ("part:.:-3", "a.b.c", "a"),
        ("part:.:2", "a.b.c", "c"),
        ("part:.:3", "a.b.c", "a.b.c"),  # no such part: as it is
        ("part:.:-4", "a.b.c", "a.b.c"),
        ("part:.:1", "DELIVERED", "DELIVERED"),  # no separator: as it is
        ("part:.:0", "DELIVERED", "DELIVERED"),
        ("part:.:1", "a..b", ""),  # an empty part is a part
        ("part:::1", "id:42", "42"),  # the index follows the last colon
        ("part: - :1", "x - y - z", "y"),
        ("upper", "Delivered", "DELIVERED"),
        ("upper", "straße é", "STRAßE é"),  # ASCII letters only: the length never changes
        ("lower", "DELIVRD", "delivrd"),
        ("lower", "ÉCHEC", "Échec"),
        ("map:DELIVRD=delivered,UNDELIV=failed", "UNDELIV", "failed"),
        ("map:DELIVRD=delivered,UNDELIV=failed", "EXPIRED", "EXPIRED"),  # not listed: as it is
        ("map:DELIVRD=delivered", "delivrd", "delivrd"),  # exact, case included
        ("map:a=,b=x", "a", ""),
        ("default:none", "x", "x"),
        ("default:none", "", ""),  # an empty value is a value
    ],
)
def test_each_filter_on_a_value(written: str, value: str, result: str) -> None:
    assert run(written, value) == result


@pytest.mark.parametrize(
    "written", ["trim_suffix:x", "trim_prefix:x", "part:.:0", "upper", "lower", "map:a=b"]
)
def test_no_value_stays_no_value_except_through_default(written: str) -> None:
    assert run(written, None) is None
    assert run("default:n/a", None) == "n/a"
    assert run("default:", None) == ""


def test_a_filter_never_makes_a_value_longer_than_the_value_or_its_argument() -> None:
    value = "Ab.c-" * 20
    for written in ["trim_suffix:c-", "trim_prefix:Ab", "part:.:-1", "upper", "lower", "map:x=y"]:
        out = run(written, value)
        assert out is not None
        assert len(out) <= len(value)
    assert run(f"map:{value}={'z' * 200}", value) == "z" * 200


def test_filters_are_linear_in_the_value() -> None:
    big = ("." * 100_000) + "x" * 1_000_000
    start = time.perf_counter()
    for written in ["part:.:64", "part:.:-64", "trim_suffix:" + "x" * 200, "upper", "lower"]:
        run(written, big)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("upper:x", "upper takes no argument"),
        ("trim_suffix", "trim_suffix names its argument after a colon"),
        ("trim_suffix:", "trim_suffix needs a non-empty argument"),
        ("part:.", "part takes a separator and an index"),
        ("part::1", "part takes a separator and an index"),
        ("part:.:x", "part takes a separator and an index"),
        ("part:.:1.5", "part takes a separator and an index"),
        ("part:.:٣", "part takes a separator and an index"),  # an Arabic-Indic digit
        ("part:.:65", "part's index is at most 64 either way"),
        ("map:a", "map entry 'a' is not FROM=TO"),
        ("map:=b", "map entry '=b' is not FROM=TO"),
        ("map:a=b=c", "map entry 'a=b=c' is not FROM=TO"),
        ("map:a=b,a=c", "map lists 'a' twice"),
        ("map:" + ",".join(f"{i}=x" for i in range(MAX_MAP_ENTRIES + 1)), "map lists at most 32"),
    ],
)
def test_a_badly_written_filter_says_how_to_write_it(written: str, says: str) -> None:
    with pytest.raises(FilterSyntaxError, match=says.replace("(", r"\(")):
        parse_value_filter(written)


def test_a_filter_that_is_no_value_filter_is_none() -> None:
    assert parse_value_filter("ucs2_hex") is None
    assert parse_value_filter("base_url") is None
    assert parse_value_filter("part:.:-2") == ValueFilter("part", text=".", index=-2)


def test_a_placeholder_may_hold_256_characters_of_filters() -> None:
    filters = "map:" + "a=b," * 62 + "c=de"  # 256 characters
    assert len(filters) == MAX_FILTER_TEXT
    placeholder = sole_placeholder(f"$status|{filters}$")
    assert placeholder is not None
    assert placeholder.filters == (filters,)
    assert has_stray_dollar(f"$status|{filters}x$")  # 257: not a placeholder


# --- in requests ---------------------------------------------------------------------------------


def render(parameters: Any, values: dict[str, Any], **kwargs: Any) -> Any:
    template = request(parameters, **kwargs)
    return render_request(definition(template), template, values)


def test_value_filters_in_a_request_body_url_and_header() -> None:
    rendered = render(
        {
            "to": "$to|trim_prefix:+$",
            "kind": "$status|lower|map:sms=text$",
            "ref": "[$gateway_id|default:none|upper$]",
            "tags": "$tags|upper$",
        },
        {"to": "+15551234567", "status": "SMS", "tags": ("a", "b")},
        url="https://api.example.com/$to|part:555:-1$/send",
        headers={"X-Kind": "$status|lower$"},
    )
    assert json.loads(rendered.body) == {
        "to": "15551234567",
        "kind": "text",
        "ref": "[NONE]",
        "tags": ["A", "B"],
    }
    assert rendered.url == "https://api.example.com/1234567/send"
    assert dict(rendered.headers)["X-Kind"] == "sms"


def test_filters_run_left_to_right_a_value_filter_then_an_encoding() -> None:
    rendered = render(
        {"hex": "$content|trim_suffix:!|ucs2_hex$", "default": "$gateway_id|default:Ж|ucs2_hex$"},
        {"content": "Hi!"},
    )
    assert json.loads(rendered.body) == {"hex": "00480069", "default": "0416"}


def test_a_sole_placeholder_without_a_value_is_still_left_out_without_a_default() -> None:
    rendered = render({"a": "$gateway_id|upper$", "b": "$gateway_id|upper|default:x$"}, {})
    assert json.loads(rendered.body) == {"b": "x"}


# --- in webhook models ---------------------------------------------------------------------------


def status_model(**extra: Any) -> dict[str, Any]:
    return {
        "event_key": "status",
        "event_type": "messageStatus",
        "request_method": "POST",
        "request_parameters": {
            "id": "$messageid|trim_prefix:msg-$",
            "status": "$status|trim_suffix:.null|lower$",
            "reason": "$error|default:none?$",
        },
        **extra,
    }


def post(definition: Any, payload: Any, headers: dict[str, str] | None = None) -> Any:
    webhook = WebhookRequest(
        method="POST",
        content_type="application/json",
        body=json.dumps(payload).encode(),
        headers=tuple((headers or {}).items()),
    )
    return match_webhook(definition, webhook)


def test_a_model_filters_its_captures() -> None:
    document = doc(status_model())
    assert problems(document) == []
    definition = load_definition(document)
    (event,) = post(definition, {"id": "msg-7", "status": "UNKNOWN.null"}).events
    assert (event.provider_message_id, event.status, event.error) == ("7", "unknown", "none")
    (event,) = post(definition, {"id": "7", "status": "Queued", "reason": "x"}).events
    assert (event.provider_message_id, event.status, event.error) == ("7", "queued", "x")
    (event,) = post(definition, {"id": "7", "status": "Sent", "reason": None}).events
    assert event.error == "none"  # JSON null is no value


def test_filters_run_after_decode_and_before_patterns_and_build() -> None:
    model = status_model(
        decode={"status": "base64"},
        patterns={"status": "[a-z]+"},
        build={"error": "was $status$"},
    )
    definition = load_definition(doc(model))
    encoded = "REVMSVZFUkVELm51bGw="  # base64 of "DELIVERED.null"
    (event,) = post(definition, {"id": "1", "status": encoded}).events
    assert event.status == "delivered"
    assert event.error == "was delivered"  # build reads the filtered capture
    # the pattern sees the filtered value: "failed.expired" is not [a-z]+
    result = post(definition, {"id": "1", "status": "RkFJTEVELkVYUElSRUQ="})
    assert result.events == ()
    assert "$status$ 'failed.expired' does not match its pattern" in result.unmatched[0].reason


def test_a_list_capture_and_a_header_capture_are_filtered() -> None:
    tags = {"from": "$from$", "to": "$to$", "text": "$content$", "tags": ["$tag|upper$"]}
    model = {
        **dict.fromkeys(("event_key", "event_type"), "message"),
        "request_method": "POST",
        "request_parameters": tags,
        "request_headers": {"X-Id": "$messageid|part:/:-1$"},
        "keep": ["tag"],
    }
    definition = load_definition(doc(model))
    payload = {"from": "+1", "to": "+2", "text": "hi", "tags": ["a", "b"]}
    (event,) = post(definition, payload, {"X-Id": "/v1/messages/abc"}).events
    assert event.provider_message_id == "abc"
    assert event.captures["tag"] == ("A", "B")
    assert event.fields["tag"] == "A"


def test_a_filtered_literal_part_of_a_mixed_string_still_matches_exactly() -> None:
    model = status_model()
    model["request_parameters"]["status"] = "dlr.$status|upper$"
    definition = load_definition(doc(model))
    (event,) = post(definition, {"id": "1", "status": "dlr.sent"}).events
    assert event.status == "SENT"
    assert post(definition, {"id": "1", "status": "DLR.sent"}).events == ()


# --- the checks ----------------------------------------------------------------------------------

AT = "/API/SendMessage/request_parameters/text"


def with_send_text(text: str) -> dict[str, Any]:
    document = doc(status_model())
    document["API"]["SendMessage"]["request_parameters"]["text"] = text
    return document


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$content|trim:x$", "$content|trim:x$: unknown filter 'trim:x'"),
        ("$content|uper$", "$content|uper$: unknown filter 'uper' (did you mean upper?)"),
        ("$content|upper:x$", "$content|upper:x$: upper takes no argument (write upper)"),
        ("$content|part:.:99$", "$content|part:.:99$: part's index is at most 64 either way"),
        ("$content|map:a$", "$content|map:a$: map entry 'a' is not FROM=TO"),
        ("$content|trim_suffix:$", "$content|trim_suffix:$: trim_suffix needs a non-empty"),
        (
            "$content|upper|lower|upper|lower|upper$",
            "$content|upper|lower|upper|lower|upper$: a placeholder takes at most 4 filters",
        ),
        (
            "$content|ucs2_hex|lower|base64$",
            "$content|ucs2_hex|lower|base64$: a placeholder takes one encoding filter",
        ),
        (
            "$content|default:a|upper|default:b$",
            "$content|default:a|upper|default:b$: a placeholder takes one default:",
        ),
    ],
)
def test_a_request_filter_is_known_well_written_and_bounded(text: str, message: str) -> None:
    (problem,) = problems(with_send_text(text))
    assert problem[0] == AT
    assert problem[1].startswith(message)


def test_value_filters_chain_with_one_encoding_in_a_request() -> None:
    assert problems(with_send_text("$content|trim_suffix:.|lower|map:a=b|ucs2_hex$")) == []


def test_an_encoding_or_base_url_in_a_model_is_refused() -> None:
    model = status_model()
    model["request_parameters"]["status"] = "$status|lower|ucs2_hex$"
    assert problems(doc(model)) == [
        (
            "/Webhook/0/request_parameters/status",
            "$status|lower|ucs2_hex$: ucs2_hex writes a value into a request; a webhook model's "
            "capture takes value filters only (decode reads a capture's encoding)",
        )
    ]


def test_base_url_in_a_model_is_refused() -> None:
    model = status_model()
    model["request_parameters"]["status"] = "$status|base_url$"
    assert [message for _, message in problems(doc(model))] == [
        "$status|base_url$: base_url writes a value into a request; a webhook model's capture "
        "takes value filters only (decode reads a capture's encoding)"
    ]


def test_a_filter_on_event_key_is_refused() -> None:
    model = status_model()
    model["request_parameters"]["kind"] = "$event_key|upper$"
    assert problems(doc(model)) == [
        (
            "/Webhook/0/request_parameters/kind",
            "$event_key|upper$: $event_key$ is the model's own key, a literal: no filters",
        )
    ]


def test_a_name_captured_twice_takes_the_same_filters() -> None:
    model = status_model()
    model["request_headers"] = {"X-Id": "$messageid$"}
    assert problems(doc(model)) == [
        (
            "/Webhook/0/request_headers/X-Id",
            "$messageid$: $messageid$ is captured with trim_prefix:msg- at "
            "/Webhook/0/request_parameters/id; a name captured in several places takes the same "
            "filters at each",
        )
    ]
    model["request_headers"] = {"X-Id": "$messageid|trim_prefix:msg-$"}
    assert problems(doc(model)) == []


def test_filters_where_they_have_no_meaning_are_refused() -> None:
    document = doc(status_model())
    document["API"]["SendMessage"]["response_map"] = {"id": "$messageid|lower$"}
    document["auth"]["token"] = "$token|trim_prefix:x$"
    found = problems(document)
    assert (
        "/API/SendMessage/response_map/id",
        "$messageid|lower$: filters work in requests (SendMessage, SendFile, SendTyping, "
        "MarkRead, Subscribe, Unsubscribe, the token request) and webhook models, not in a "
        "response_map",
    ) in found
    assert any(at == "/auth/token" and "filters work in requests" in m for at, m in found)


def test_a_built_value_still_names_captures_plainly() -> None:
    model = status_model(build={"error": "$status|upper$"})
    assert any(at == "/Webhook/0/build/error" for at, _ in problems(doc(model)))
