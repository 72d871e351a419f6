"""Text encodings (docs/format.md, "Text encodings"): GSM-7 detection and segments, the encodings
by name, filters and $switch in requests, decode in webhook models, and their checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from _request_templates import definition, request

from server.engine import (
    RenderError,
    WebhookRequest,
    check_definition,
    load_definition,
    map_response,
    match_webhook,
    render_request,
    segment_count,
    text_encoding,
)
from server.engine._codecs import ENCODINGS, decode_value, encode_value
from server.engine._gsm import gsm7_septets, gsm7_text, pack_septets, unpack_septets
from server.engine._render import MASK

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"
FORM = "application/x-www-form-urlencoded"

# -- GSM-7 detection and segments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("", "GSM-7"),
        ("Hello world!", "GSM-7"),
        ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ ¤¡ÄÖÑÜ§¿äöñüà", "GSM-7"),
        ("price: 5€ [x] {y} ~z^ | \\ \f", "GSM-7"),  # the extension table
        ("Привет", "UCS-2"),
        ("café", "GSM-7"),  # é is septet 0x05
        ("cafá", "UCS-2"),  # á is in no GSM table
        ("naïve", "UCS-2"),
        ("ok 👍", "UCS-2"),
        ("`", "UCS-2"),  # the backtick is in no GSM table
    ],
)
def test_text_encoding(text: str, encoding: str) -> None:
    assert text_encoding(text) == encoding


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),  # 162 septets; a part holds 76 euros (152 septets), never half of one
        ("€" * 152, 2),
        ("€" * 153, 3),
        ("a" * 152 + "€" + "a" * 10, 2),  # the escape pair moves whole to the second part
        ("Ж" * 70, 1),
        ("Ж" * 71, 2),
        ("Ж" * 134, 2),
        ("Ж" * 135, 3),
        ("👍" * 35, 1),  # 70 UTF-16 units
        ("👍" * 36, 2),
        ("Ж" * 66 + "👍" + "Ж" * 65, 2),
        ("Ж" * 66 + "👍" + "Ж" * 66, 3),  # 134 units, but the pair moves whole to part two
    ],
)
def test_segment_count(text: str, segments: int) -> None:
    assert segment_count(text) == segments


def test_segments_in_a_chosen_encoding() -> None:
    assert segment_count("a" * 100, "UCS-2") == 2
    with pytest.raises(ValueError, match=r"GSM 03\.38"):
        segment_count("Ж", "GSM-7")


def test_segment_count_is_linear() -> None:
    assert segment_count("€" * 200_000) == 2632  # 400,000 septets, 76 euros (152) a part


def test_septets_and_packing() -> None:
    assert gsm7_septets("€") == b"\x1b\x65"
    assert gsm7_septets("@A") == b"\x00\x41"
    # 3GPP TS 23.038's classic example: "hellohello" packs to E8329BFD4697D9EC37
    assert pack_septets(gsm7_septets("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert gsm7_text(unpack_septets(bytes.fromhex("E8329BFD4697D9EC37"))) == "hellohello"
    for text in ("", "a", "1234567", "12345678", "123456789", "€uro [ok]"):
        assert gsm7_text(unpack_septets(pack_septets(gsm7_septets(text)))) == text
    with pytest.raises(ValueError, match=r"character 2 \(U\+0416\)"):
        gsm7_septets("aЖ")
    with pytest.raises(ValueError, match="escape"):
        gsm7_text(b"a\x1b")
    with pytest.raises(ValueError, match="extension table"):
        gsm7_text(b"\x1b\x41")
    with pytest.raises(ValueError, match="not a GSM-7 septet"):
        gsm7_text(b"\x80")


# -- encodings by name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "encoded"),
    [
        ("ucs2_hex", "Привет", "041F04400438043204350442"),
        ("ucs2_hex", "€", "20AC"),
        ("ucs2_hex", "👍", "D83DDC4D"),
        ("ucs2_base64", "Hi", "AEgAaQ=="),
        ("base64", "héllo €", "aMOpbGxvIOKCrA=="),
        ("utf8_base64", "héllo €", "aMOpbGxvIOKCrA=="),
        ("utf8_hex", "é", "C3A9"),
        ("latin1_hex", "é", "E9"),
        ("latin1_base64", "café", "Y2Fm6Q=="),
        ("gsm7_hex", "Hi €", "4869201B65"),
        ("gsm7_packed_hex", "hellohello", "E8329BFD4697D9EC37"),
        ("gsm7_base64", "@", "AA=="),
        ("gsm7_packed_base64", "hellohello", "6DKb/UaX2ew3"),
        ("ucs2_percent", "Hé!", "%00H%00%E9%00%21"),
        ("latin1_percent", "a b~", "a%20b~"),
        ("utf8_percent", "€", "%E2%82%AC"),
    ],
)
def test_known_vectors_both_ways(name: str, text: str, encoded: str) -> None:
    assert encode_value(name, text) == encoded
    assert decode_value(name, encoded) == text


def test_hex_is_read_in_either_case_and_around_spaces() -> None:
    assert decode_value("ucs2_hex", " 041f0440 ") == "Пр"


def test_percent_reads_plus_as_a_space_and_plain_ascii_as_itself() -> None:
    # Clickatell's UCS-2 reply as RapidPro's courier receives it (handlers/clickatell testdata)
    assert decode_value("ucs2_percent", "%00t%00e%00n%00%ED%00a%00+%00.") == "tenía ."
    assert decode_value("latin1_percent", "hello%21+Gr%fc%DFe") == "hello! Grüße"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("ucs2_hex", "041", "even number of digits"),
        ("ucs2_hex", "04XF", r"character 3 \('X'\) is not a hex digit"),
        ("ucs2_hex", "04", "UTF-16BE text has an even number of bytes"),
        ("ucs2_hex", "D83D", "not valid UTF-16BE"),  # a lone surrogate
        ("utf8_hex", "FF", "byte 1 is not valid UTF-8"),
        ("base64", "a", "not valid base64"),
        ("base64", "Привет", "not valid base64"),
        ("gsm7_hex", "80", "not a GSM-7 septet"),
        ("latin1_percent", "50%", r"character 3 \('%'\) is not followed by two hex digits"),
        ("latin1_percent", "%zz", "not followed by two hex digits"),
        ("latin1_percent", "é", r"character 1 \(U\+00E9\) is not ASCII"),
        ("ucs2_percent", "%00", "UTF-16BE text has an even number of bytes"),
    ],
)
def test_values_that_do_not_decode_say_why(name: str, value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_value(name, value)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("latin1_hex", "€", r"character 1 \(U\+20AC\) cannot be written in ISO-8859-1"),
        ("gsm7_hex", "Привет", "not in the GSM 03.38 alphabet"),
        ("ucs2_hex", "\ud800", "cannot be written in UTF-16BE"),
    ],
)
def test_text_that_cannot_be_encoded_says_why(name: str, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_value(name, text)


def test_the_names_are_every_charset_in_every_form() -> None:
    assert len(ENCODINGS) == 16
    for name in ENCODINGS:
        assert decode_value(name, encode_value(name, "Hello")) == "Hello"


def test_unknown_names_are_key_errors() -> None:
    for name in ("hex", "ucs2", "utf16_hex", "x_base64"):
        with pytest.raises(KeyError):
            encode_value(name, "a")


# -- filters and $switch in requests ---------------------------------------------------------------

SWITCH_TYPE = {"$switch": "$encoding$", "cases": {"GSM-7": "text", "UCS-2": "unicode"}}


def _render(parameters: Any, content: str, **kwargs: Any) -> Any:
    template = request(parameters, content_type=FORM, **kwargs)
    rendered = render_request(definition(template), template, {"content": content, "to": "1"})
    assert rendered.body is not None
    return dict(parse_qsl(rendered.body.decode(), keep_blank_values=True))


def test_encoding_switch_chooses_by_the_text() -> None:
    parameters = {"text": "$content$", "type": SWITCH_TYPE}
    assert _render(parameters, "Hello €") == {"text": "Hello €", "type": "text"}
    assert _render(parameters, "Привет") == {"text": "Привет", "type": "unicode"}


def test_a_switch_without_the_case_is_its_default_else_left_out() -> None:
    only_ucs2 = {"$switch": "$encoding$", "cases": {"UCS-2": "8"}}
    assert _render({"coding": only_ucs2}, "Hi") == {}
    assert _render({"coding": only_ucs2}, "Ж") == {"coding": "8"}
    with_default = {**only_ucs2, "default": "0"}
    assert _render({"coding": with_default}, "Hi") == {"coding": "0"}


def test_switch_cases_are_templates_with_filters_and_null_leaves_the_key_out() -> None:
    parameters = {
        "content": {"$switch": "$encoding$", "cases": {"GSM-7": "$content$", "UCS-2": None}},
        "hex-content": {
            "$switch": "$encoding$",
            "cases": {"UCS-2": "$content|ucs2_hex$"},
            "default": None,
        },
    }
    assert _render(parameters, "Hi") == {"content": "Hi"}
    assert _render(parameters, "Привет") == {"hex-content": "041F04400438043204350442"}


def test_null_in_a_switch_leaves_the_key_out_of_json_too() -> None:
    template = request({"a": {"$switch": "$encoding$", "cases": {"GSM-7": None, "UCS-2": None}}})
    rendered = render_request(definition(template), template, {"content": "x"})
    assert rendered.body == b"{}"


def test_a_switch_on_a_property_and_nested_in_json() -> None:
    template = request(
        {
            "route": {
                "$switch": "$Route$",
                "cases": {"a": {"kind": "A", "to": "$to$"}, "b": ["$to$"]},
            }
        }
    )
    result = {}
    for route in ("a", "b", "c"):
        rendered = render_request(definition(template), template, {"Route": route, "to": "+1"})
        assert rendered.body is not None
        result[route] = json.loads(rendered.body)
    assert result == {"a": {"route": {"kind": "A", "to": "+1"}}, "b": {"route": ["+1"]}, "c": {}}


def test_sendfile_encoding_is_the_captions() -> None:
    template = request({"t": SWITCH_TYPE}, pointer="/API/SendFile")
    values = {"content": "https://example.com/Ж.png", "text": "Hi"}
    rendered = render_request(definition(send_file=template), template, values)
    assert rendered.body == b'{"t":"text"}'


def test_filters_in_the_url_and_headers() -> None:
    template = request(
        None,
        url="https://api.example.com/send?text=$content|ucs2_hex$&b=$content|base64$",
        headers={"X-Text": "$content|ucs2_hex$"},
    )
    rendered = render_request(definition(template), template, {"content": "Ж!"})
    assert rendered.url == "https://api.example.com/send?text=04160021&b=0JYh"
    assert ("X-Text", "04160021") in rendered.headers


def test_a_filter_on_a_list_encodes_each_element() -> None:
    template = request({"t": "$content|ucs2_hex$", "j": "x$content|ucs2_hex$"})
    rendered = render_request(definition(template), template, {"content": ("A", "Ж")})
    assert rendered.body is not None
    assert json.loads(rendered.body) == {"t": ["0041", "0416"], "j": "x0041002C0416"}


def test_a_value_a_filter_cannot_encode_fails_the_render_with_its_place() -> None:
    template = request({"t": "$content|gsm7_hex$"})
    with pytest.raises(RenderError, match=r"\$content\|gsm7_hex\$: character 1") as caught:
        render_request(definition(template), template, {"content": "Ж"})
    assert caught.value.pointer == "/API/SendMessage/request_parameters"
    url = request(None, url="https://api.example.com/$content|latin1_hex$")
    with pytest.raises(RenderError) as caught:
        render_request(definition(url), url, {"content": "€"})
    assert caught.value.pointer == "/API/SendMessage/request_url"


def test_a_placeholder_takes_one_encoding_filter() -> None:
    # a chain of encodings could multiply a value's size (hex doubles it) with each filter
    assert _problems(_with_send({"t": "$content|utf8_hex|utf8_hex$"})) == [
        "error /API/SendMessage/request_parameters/t: $content|utf8_hex|utf8_hex$: a "
        "placeholder takes one encoding filter (or base_url)"
    ]


# -- decode in webhook models ----------------------------------------------------------------------


def _template_with(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(TEMPLATE.read_text())
    doc = copy.deepcopy(doc)
    for index, model in changes.items():
        doc["Webhook"][int(index[1:])].update(model)
    return doc


def _post(body: dict[str, Any]) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        headers=(),
        content_type="application/json",
        body=json.dumps(body).encode(),
        query=(),
    )


def _inbound(content: str) -> dict[str, Any]:
    return {"method": "message", "params": {"from": "1", "to": "2", "content": content}}


def test_a_declared_encoding_decodes_the_capture() -> None:
    doc = _template_with(m2={"decode": {"content": "ucs2_hex"}})
    result = match_webhook(load_definition(doc), _post(_inbound("041F04400438043204350442")))
    assert [e.text for e in result.events] == ["Привет"]
    assert result.events[0].captures["content"] == "Привет"


def test_a_list_capture_decodes_each_element() -> None:
    doc = _template_with(m1={"decode": {"url": "base64"}})
    body = {
        "method": "file",
        "params": {"from": "1", "to": "2", "text": "t", "url": ["YQ==", "Yg=="]},
    }
    result = match_webhook(load_definition(doc), _post(body))
    assert result.events[0].media_urls == ("a", "b")


def test_a_value_that_does_not_decode_is_kept_unmatched_with_the_reason() -> None:
    doc = _template_with(m2={"decode": {"content": "ucs2_hex"}})
    result = match_webhook(load_definition(doc), _post(_inbound("Hello!")))
    assert result.events == ()
    (unmatched,) = result.unmatched
    assert "$content$ is not ucs2_hex: character 1 ('H') is not a hex digit" in unmatched.reason
    assert unmatched.near_misses[0].reason.startswith("$content$ is not ucs2_hex")


def test_a_value_that_does_not_decode_falls_to_the_next_model() -> None:
    doc = _template_with(m2={"decode": {"content": "ucs2_hex"}})
    plain = copy.deepcopy(doc["Webhook"][2])
    del plain["decode"]
    plain["event_key"] = "plain"
    plain["request_parameters"] = {"params": plain["request_parameters"]["params"]}
    doc["Webhook"].append(plain)
    definition_ = load_definition(doc)
    assert [e.event_key for e in match_webhook(definition_, _post(_inbound("0041"))).events] == [
        "message"
    ]
    fallback = match_webhook(definition_, _post(_inbound("Hello"))).events
    assert [(e.event_key, e.text) for e in fallback] == [("plain", "Hello")]


def test_decoded_text_is_clean_unicode() -> None:
    doc = _template_with(m2={"decode": {"content": "latin1_hex"}})
    result = match_webhook(load_definition(doc), _post(_inbound("636166E9")))
    assert result.events[0].text == "café"


# -- the checks ------------------------------------------------------------------------------------


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


def _with_send(parameters: Any, url: str | None = None) -> dict[str, Any]:
    doc = _template_with()
    doc["API"]["SendMessage"]["request_parameters"] = parameters
    if url is not None:
        doc["API"]["SendMessage"]["request_url"] = url
    return doc


def test_the_shipped_template_still_has_no_problem() -> None:
    assert _problems(_template_with()) == []


def test_a_good_use_has_no_problem() -> None:
    doc = _with_send(
        {"to": "$to$", "text": "$content|ucs2_hex$", "type": SWITCH_TYPE},
        url="https://api.example.com/send/$content|base64$",
    )
    doc["Webhook"][2]["decode"] = {"content": "gsm7_packed_hex"}
    assert _problems(doc) == []


def test_unknown_filter() -> None:
    [problem] = _problems(_with_send({"text": "$content|ucs2hex$"}))
    assert problem.startswith(
        "error /API/SendMessage/request_parameters/text: $content|ucs2hex$: unknown filter "
        "'ucs2hex' (did you mean ucs2_hex?); the filters are the value filters trim_prefix, "
    )


def test_a_filter_needs_a_name_and_a_request() -> None:
    assert (
        "error /API/SendMessage/request_parameters/text: $|base64$: a placeholder needs a name "
        "before |"
    ) in _problems(_with_send({"text": "$|base64$"}))
    doc = _template_with()
    doc["Webhook"][2]["request_parameters"]["params"]["content"] = "$content|base64$"
    assert _problems(doc) == [
        "error /Webhook/2/request_parameters/params/content: $content|base64$: base64 writes a "
        "value into a request; a webhook model's capture takes value filters only (decode reads "
        "a capture's encoding)"
    ]


def test_encoding_switch_names_and_cases() -> None:
    assert _problems(
        _with_send({"type": {"$switch": "$encoding$", "cases": {"GSM7": "text", "UCS-2": "u"}}})
    ) == [
        "error /API/SendMessage/request_parameters/type/cases: this $encoding$ switch has no "
        "case for GSM-7 and no default: say what is sent for every encoding (null: the key is "
        "left out)",
        'error /API/SendMessage/request_parameters/type/cases/GSM7: "GSM7" is not a value of '
        "$encoding$ (did you mean GSM-7?); it is GSM-7 or UCS-2",
    ]
    with_default = {"$switch": "$encoding$", "cases": {"UCS-2": "8"}, "default": "0"}
    assert _problems(_with_send({"coding": with_default})) == []
    leave_out = {"$switch": "$encoding$", "cases": {"GSM-7": "$content$", "UCS-2": None}}
    assert _problems(_with_send({"content": leave_out})) == []


def test_switch_shape() -> None:
    problems = _problems(
        _with_send(
            {
                "a": {"$switch": "GSM-7", "cases": {"GSM-7": "x"}},
                "b": {"$switch": "$to$"},
                "c": {"$switch": "$to$", "cases": {"1": "x"}, "else": "y"},
            }
        )
    )
    assert problems == [
        'error /API/SendMessage/request_parameters/a/$switch: the value of "$switch" is a '
        'template with a placeholder, such as "$encoding$", whose text names the case',
        'error /API/SendMessage/request_parameters/b: a $switch needs "cases": an object from '
        "each value to what is sent for it",
        'error /API/SendMessage/request_parameters/c/else: a $switch object has only "$switch", '
        '"cases" and "default"; "else" is not one (put the value in a case)',
    ]


def test_no_switch_in_a_webhook_model() -> None:
    doc = _template_with()
    doc["Webhook"][2]["request_parameters"]["params"]["kind"] = {
        "$switch": "$encoding$",
        "cases": {"GSM-7": "a", "UCS-2": "b"},
    }
    assert any(
        p.startswith("error /Webhook/2/request_parameters/params/kind/$switch: a $switch")
        for p in _problems(doc)
    )


def test_encoding_is_a_send_variable_only() -> None:
    doc = _template_with()
    doc["Webhook"][2]["request_parameters"]["params"]["coding"] = "$encoding$"
    assert (
        "error /Webhook/2/request_parameters/params/coding: $encoding$ is not available in a "
        "webhook model; it can be used in SendMessage and SendFile"
    ) in _problems(doc)


def test_decode_names_a_capture_and_an_encoding() -> None:
    doc = _template_with(m2={"decode": {"content": "ucs2", "body": "base64"}})
    assert _problems(doc) == [
        "error /Webhook/2/decode/body: the model does not capture $body$: decode names captures "
        "of its own model",
        "error /Webhook/2/decode/content: unknown encoding 'ucs2' (did you mean ucs2_hex?); "
        "the encodings are " + ", ".join(ENCODINGS),
    ]
    doc["Webhook"][2]["decode"] = {"content": 7}
    assert any("/Webhook/2/decode/content" in p for p in _problems(doc))


def test_a_property_name_cannot_hold_a_bar() -> None:
    doc = _template_with()
    doc["properties"] = ["API|key"]
    doc["auth"]["token"] = "x"
    assert (
        'error /properties/0: property name "API|key" cannot contain "|" ($name|filter$ encodes '
        "a value)"
    ) in _problems(doc)


def test_a_masked_rendering_shows_a_filtered_secret_as_the_mask() -> None:
    template = request(
        {"key": "$API key|gsm7_hex$", "t": "$content|ucs2_hex$"},
        headers={"X-Key": "k=$API key|base64$"},
    )
    values = {"content": "Ж", "API key": "s3cret"}
    real = render_request(definition(template), template, values)
    assert real.body == b'{"key":"733363726574","t":"0416"}'
    masked = render_request(definition(template), template, values, masked=True)
    assert masked.body is not None
    assert json.loads(masked.body) == {"key": MASK, "t": "0416"}
    assert ("X-Key", f"k={MASK}") in masked.headers


def test_vonage_sms_refusal_inside_a_200_fails_the_send_with_its_error_text() -> None:
    # https://developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms: status 2
    doc = (TEMPLATE.parent / "vonage_sms.json").read_bytes()
    vonage = load_definition(doc)
    answer = (
        b'{"message-count": "1", "messages": [{"status": "2", "error-text": "Missing to param"}]}'
    )
    outcome = map_response(vonage.send_message.response_map, answer, "application/json")
    assert (outcome.accepted, outcome.error) == (False, "Missing to param")
