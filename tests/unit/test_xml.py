"""XML bodies (docs/format.md, "XML bodies"): the tree a document becomes, the hardened parser's
refusals and limits, XML request bodies from a template, the checker's rule, XML answers."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from _request_templates import definition, request
from hypothesis import given, settings
from hypothesis import strategies as st

from server.engine import (
    RenderError,
    WebhookParseError,
    WebhookRequest,
    check_definition,
    load_definition,
    map_response,
    match_webhook,
    parse_webhook,
    render_request,
)
from server.engine._render import MASK
from server.engine._xml import MAX_XML_DEPTH, MAX_XML_NODES, parse_xml

ROOT = Path(__file__).resolve().parents[2]
ESENDEX = ROOT / "integrations" / "esendex.json"


def parse(body: bytes | str, content_type: str | None = "application/xml") -> object:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return parse_webhook(WebhookRequest(method="POST", content_type=content_type, body=raw))


def refusal(body: bytes | str, content_type: str | None = "application/xml") -> str:
    with pytest.raises(WebhookParseError) as caught:
        parse(body, content_type)
    return str(caught.value)


# --- the tree -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/xml", "text/xml; charset=utf-8", "application/soap+xml"]
)
def test_xml_by_content_type(content_type: str) -> None:
    assert parse("<a><b>1</b></a>", content_type) == {"a": {"b": "1"}}


def test_a_leaf_element_is_its_text_verbatim_and_an_empty_one_is_empty() -> None:
    assert parse("<m><t>  two  spaces </t><e/><f></f></m>") == {
        "m": {"t": "  two  spaces ", "e": "", "f": ""}
    }


def test_attributes_are_at_keys_and_text_beside_them_is_hash_text() -> None:
    assert parse('<m id="7" kind="sms">hello</m>') == {
        "m": {"@id": "7", "@kind": "sms", "#text": "hello"}
    }


def test_whitespace_between_child_elements_is_not_text() -> None:
    assert parse("<m>\n  <a>1</a>\n  <b>2</b>\n</m>") == {"m": {"a": "1", "b": "2"}}


def test_a_repeated_element_is_a_list_in_document_order_and_a_single_one_is_not() -> None:
    tree = parse("<r><m>1</m><x>only</x><m>2</m><m>3</m></r>")
    assert tree == {"r": {"m": ["1", "2", "3"], "x": "only"}}


def test_namespaces_are_dropped_to_local_names() -> None:
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        '<s:Body><Notify xmlns="urn:x" xmlns:p="urn:p" p:id="9"><To>1</To></Notify></s:Body>'
        "</s:Envelope>"
    )
    assert parse(body) == {"Envelope": {"Body": {"Notify": {"@id": "9", "To": "1"}}}}


def test_cdata_and_references_are_text_and_comments_and_instructions_are_nothing() -> None:
    body = "<?xml version='1.0'?><!-- c --><m><?pi x?><t><![CDATA[<b>&]]> &amp; &#x1F600;</t></m>"
    assert parse(body) == {"m": {"t": "<b>& & 😀"}}


def test_the_declared_encoding_wins_then_the_charset_then_utf8() -> None:
    latin = "<m>café</m>".encode("iso-8859-1")
    assert parse(b'<?xml version="1.0" encoding="ISO-8859-1"?>' + latin) == {"m": "café"}
    assert parse(latin, "text/xml; charset=iso-8859-1") == {"m": "café"}
    assert "not well-formed" in refusal(latin)
    assert parse("<m>café</m>".encode("utf-16")) == {"m": "café"}


def test_without_a_content_type_a_body_starting_with_lt_is_xml_if_it_can_be() -> None:
    assert parse("  <m><a>1</a></m>", None) == {"m": {"a": "1"}}
    # not XML after all: a form, as before XML was read
    assert parse("<a=1&b=2", None) == {"<a": "1", "b": "2"}


def test_the_esendex_notification_matches_its_model() -> None:
    body = (
        "<InboundMessage><Id>n1</Id><MessageId>m1</MessageId><AccountId>a</AccountId>"
        "<MessageText>Hi &amp; bye</MessageText><From>447700900001</From>"
        "<To>447700900002</To></InboundMessage>"
    )
    result = match_webhook(
        load_definition(ESENDEX.read_bytes()),
        WebhookRequest(method="POST", content_type="text/xml", body=body.encode()),
    )
    (event,) = result.events
    assert (event.from_number, event.to_number, event.text) == (
        "447700900001",
        "447700900002",
        "Hi & bye",
    )
    assert event.provider_message_id == "m1"


# --- hardening ------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BILLION_LAUGHS, "a DTD (<!DOCTYPE …>) is not allowed"),
        ('<!DOCTYPE m SYSTEM "file:///etc/passwd"><m/>', "a DTD (<!DOCTYPE …>) is not allowed"),
        ("<!DOCTYPE m><m/>", "a DTD (<!DOCTYPE …>) is not allowed"),
        ("<m>&secret;</m>", "undefined entity (line 1, column 4)"),
        ("<m><a></m>", "mismatched tag (line 1, column 9)"),
        ("<a/><b/>", "junk after document element"),
        ("not xml", "syntax error"),
    ],
)
def test_a_body_that_is_not_acceptable_xml_says_why(body: str, reason: str) -> None:
    message = refusal(body)
    assert message.startswith("the body is not acceptable XML: ")
    assert reason in message


def test_nesting_beyond_the_limit_is_refused_and_at_the_limit_read() -> None:
    at_limit = "<a>" * MAX_XML_DEPTH + "</a>" * MAX_XML_DEPTH
    assert isinstance(parse(at_limit), dict)
    deeper = "<a>" * (MAX_XML_DEPTH + 1) + "</a>" * (MAX_XML_DEPTH + 1)
    assert f"nested deeper than {MAX_XML_DEPTH} levels" in refusal(deeper)


def test_more_nodes_than_the_limit_are_refused_attributes_included() -> None:
    elements = "<r>" + "<a/>" * MAX_XML_NODES + "</r>"
    assert f"more than {MAX_XML_NODES} elements and attributes" in refusal(elements)
    attributes = "<r " + " ".join(f"a{i}='1'" for i in range(MAX_XML_NODES)) + "/>"
    assert "elements and attributes" in refusal(attributes)
    assert len(parse_xml(("<r>" + "<a/>" * (MAX_XML_NODES - 1) + "</r>").encode())["r"]) == 1


def test_reading_is_linear_in_the_body() -> None:
    def seconds(n: int) -> float:
        body = ("<r>" + "<m><t>x</t></m>" * n + "</r>").encode()
        start = time.perf_counter()
        parse_xml(body)
        return time.perf_counter() - start

    seconds(1000)
    small, large = min(seconds(4000) for _ in range(3)), min(seconds(16000) for _ in range(3))
    assert large < small * 4 * 3  # four times the body, well under 12 times the time


# --- writing --------------------------------------------------------------------------------------

TEMPLATE = '<?xml version="1.0"?><m kind="$kind$"><to>$to$</to><body>$content$</body></m>'


def xml_request(template: str = TEMPLATE, **kwargs: Any) -> Any:
    return request(template, content_type="application/xml", **kwargs)


def rendered_body(variables: dict[str, Any], template: str = TEMPLATE) -> bytes:
    template_ = xml_request(template)
    rendered = render_request(definition(template_), template_, variables)
    assert ("Content-Type", "application/xml") in rendered.headers
    assert rendered.body is not None
    return rendered.body


def test_values_are_escaped_in_text_and_attributes() -> None:
    body = rendered_body({"kind": "a\"b'c<d>&\te\nf", "to": "1", "content": "</body><x>&amp;"})
    parsed = ElementTree.fromstring(body)  # a real parser, not the engine's
    assert parsed.get("kind") == "a\"b'c<d>&\te\nf"
    assert parsed.findtext("body") == "</body><x>&amp;"
    assert parsed.findtext("to") == "1"
    assert body.decode("utf-8").startswith('<?xml version="1.0"?><m kind="a&quot;b&apos;c&lt;d')


def test_a_value_without_a_value_is_empty_and_a_list_is_joined() -> None:
    body = rendered_body({"to": ("1", "2")})
    assert body.decode() == '<?xml version="1.0"?><m kind=""><to>1,2</to><body></body></m>'


@pytest.mark.parametrize("bad", ["\x00", "\x1b[0m", "\ufffe", "\ud800"])
def test_a_value_xml_cannot_carry_fails_the_render(bad: str) -> None:
    template_ = xml_request()
    with pytest.raises(RenderError) as caught:
        render_request(definition(template_), template_, {"content": f"a{bad}b"})
    assert caught.value.pointer == "/API/SendMessage/request_parameters"
    assert "$content$" in str(caught.value)


def test_an_xml_body_masks_secrets_where_the_template_put_them() -> None:
    template_ = xml_request("<m><key>$API key$</key><t>$content$</t></m>")
    defn = definition(template_)
    variables = {"API key": "k-123&", "content": "k-123& stays"}
    masked = render_request(defn, template_, variables, masked=True)
    assert masked.body == f"<m><key>{MASK}</key><t>k-123&amp; stays</t></m>".encode()


def test_an_xml_get_sends_its_object_parameters_as_the_query() -> None:
    template_ = request({"q": "$to$"}, method="GET", content_type="application/xml")
    rendered = render_request(definition(template_), template_, {"to": "1"})
    assert rendered.url.endswith("?q=1") and rendered.body is None


def test_an_xml_body_that_is_not_a_string_cannot_be_rendered() -> None:
    template_ = request({"m": "$to$"}, content_type="text/xml")
    with pytest.raises(RenderError, match="must be a string"):
        render_request(definition(template_), template_, {"to": "1"})


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))))
def test_any_carriable_text_survives_a_round_trip(text: str) -> None:
    body = rendered_body({"kind": text, "content": text})
    tree = parse_xml(body)
    assert tree == {"m": {"@kind": text, "to": "", "body": text}}


# --- the checker's rule ---------------------------------------------------------------------------


def esendex_with(parameters: object, content_type: str = "application/xml") -> list[str]:
    doc = json.loads(ESENDEX.read_text())
    doc["API"]["SendMessage"]["request_parameters"] = parameters
    doc["API"]["SendMessage"]["request_content_type"] = content_type
    problems = check_definition(json.dumps(doc))
    return [f"{p.pointer}: {p.message}" for p in problems if p.severity != "warning"]


WHERE = "/API/SendMessage/request_parameters: "


def test_the_shipped_xml_definition_has_no_error() -> None:
    # (its models differ by their root element, a key: the same-constraints warning stays)
    assert [p for p in check_definition(ESENDEX.read_bytes()) if p.severity != "warning"] == []


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("<m><to>$to$</to>", "not a well-formed XML document"),
        ("<m><$to$>1</$to$></m>", "not a well-formed XML document"),
        ('<m $to$="1"/>', "not a well-formed XML document"),
        ("<m>$to$ & $from$</m>", "not a well-formed XML document"),
        ("<!DOCTYPE m><m>$to$</m>", "a DTD"),
        ("<m><!-- $to$ --></m>", "comment or processing instruction"),
        ("<m><?pi $to$?></m>", "comment or processing instruction"),
        ("<m><![CDATA[$to$]]></m>", "CDATA section"),
        ('<?xml version="1.0" encoding="ISO-8859-1"?><m>$to$</m>', "sent as UTF-8"),
    ],
)
def test_a_template_that_is_not_a_sound_xml_body_is_reported(template: str, says: str) -> None:
    problems = esendex_with(template)
    assert problems and all(p.startswith(WHERE) for p in problems)
    assert any(says in p for p in problems), problems


def test_an_xml_body_must_be_a_string_and_a_string_body_must_be_xml() -> None:
    assert any("must be a string" in p for p in esendex_with({"to": "$to$"}))
    problems = esendex_with("<m>$to$</m>", "application/json")
    assert any("XML document template" in p for p in problems), problems


def test_an_xml_content_type_is_supported() -> None:
    assert esendex_with("<m a='$to$'>$content$ $$5</m>", "application/atom+xml") == []


# --- answers --------------------------------------------------------------------------------------

ANSWER = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<messageheaders batchid="B1" '
    b'xmlns="http://api.esendex.com/ns/">\n  <messageheader uri="u" id="M1" />\n</messageheaders>'
)
MAP = {"messageheaders": {"messageheader": {"@id": "$messageid$"}}}


def test_a_response_map_is_laid_over_an_xml_answer() -> None:
    from server.engine import freeze

    outcome = map_response(freeze(MAP), ANSWER, "text/xml; charset=utf-8")
    assert outcome.accepted and outcome.message_id == "M1"


def test_an_answer_that_is_not_acceptable_xml_has_none_of_the_maps_keys() -> None:
    from server.engine import freeze

    bomb = BILLION_LAUGHS.encode()
    assert map_response(freeze(MAP), bomb, "application/xml").message_id is None
    literal = freeze({"messageheaders": {"@batchid": "B1"}})
    refused = map_response(literal, bomb, "application/xml")
    assert not refused.accepted and "not acceptable XML" in (refused.reason or "")


def test_an_xml_answer_longer_than_the_bound_is_not_read() -> None:
    from server.engine import freeze
    from server.engine._response import MAX_XML_ANSWER

    padded = ANSWER.replace(
        b"<messageheader ", b" " * (MAX_XML_ANSWER - len(ANSWER)) + b"<messageheader "
    )
    assert len(padded) == MAX_XML_ANSWER
    assert map_response(freeze(MAP), padded, "application/xml").message_id == "M1"
    longer = padded.replace(b"<messageheader ", b" <messageheader ")
    outcome = map_response(freeze(MAP), longer, "application/xml")
    assert outcome.accepted and outcome.message_id is None
    started = time.perf_counter()
    huge = b"<r>" + b"<a/>" * 250_000 + b"</r>"
    assert map_response(freeze(MAP), huge, "application/xml").message_id is None
    assert time.perf_counter() - started < 0.05
