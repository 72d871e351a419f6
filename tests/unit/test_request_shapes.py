"""(ext) Where a request's values go (docs/format.md, "Requests"): ``request_query``,
``request_parameters_in`` and the ``default:`` filter. Rendered requests are compared byte for
byte."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from server.engine import RenderError, check_definition, load_definition, render_request
from server.engine._render import MASK

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"
FORM = "application/x-www-form-urlencoded"
CALL = {"from": "+61855555555", "to": "+61123456789", "content": "Hi & bye", "API key": "k"}


def _doc(**send: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(TEMPLATE.read_text())
    doc = copy.deepcopy(doc)
    doc["API"]["SendMessage"].update(send)
    return doc


def _render(doc: dict[str, Any], call: dict[str, Any] | None = None, masked: bool = False) -> Any:
    definition = load_definition(doc)
    assert definition.send_message is not None
    return render_request(
        definition, definition.send_message, call if call is not None else CALL, masked=masked
    )


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


# -- request_query -------------------------------------------------------------------------------


def test_request_query_goes_in_the_query_of_a_post_and_the_rest_in_the_body() -> None:
    doc = _doc(
        request_url="https://sms.example.com/v1/out?v=2",
        request_query={"from": "$from$", "tag": "a b", "missing": "$gateway_id$"},
        request_parameters={"to": "$to$", "text": "$content$"},
    )
    rendered = _render(doc)
    assert rendered.method == "POST"
    assert rendered.url == "https://sms.example.com/v1/out?v=2&from=%2B61855555555&tag=a%20b"
    assert rendered.body == b'{"to":"+61123456789","text":"Hi & bye"}'
    assert _problems(doc) == []


def test_request_query_with_query_parameters_comes_first() -> None:
    doc = _doc(
        request_method="GET",
        request_query={"method": "sendSMS"},
        request_parameters={"dst": "$to$", "message": "$content$"},
    )
    rendered = _render(doc)
    assert rendered.url == (
        "https://api.example.com/messages?method=sendSMS&dst=%2B61123456789&message=Hi%20%26%20bye"
    )
    assert rendered.body is None


def test_request_query_alone_and_nested() -> None:
    doc = _doc(request_query={"a": {"b": "$to$"}, "l": ["1", "2"]}, request_parameters=None)
    del doc["API"]["SendMessage"]["request_parameters"]
    rendered = _render(doc)
    assert rendered.url == "https://api.example.com/messages?a%5Bb%5D=%2B61123456789&l=1&l=2"
    assert rendered.body is None


def test_request_query_secrets_are_masked() -> None:
    doc = _doc(request_query={"key": "$API key$"})
    # masked as GET parameters are: the mask, percent-encoded like any query value
    assert _render(doc, masked=True).url.endswith(f"?key={quote(MASK)}")


def test_request_query_checks() -> None:
    doc = _doc(request_method="GET", request_query={"to": "$to$", "x": "$nope$"})
    assert _problems(doc) == [
        'error /API/SendMessage/request_query/to: "to" is also in request_parameters, which '
        "this request sends in the query too: the parameter would be sent twice",
        "error /API/SendMessage/request_query/x: unknown placeholder $nope$: not a property of "
        "this file, nor a variable of SendMessage",
    ]
    switch = _doc(request_query={"$switch": "$encoding$", "default": "x"})
    assert (
        "error /API/SendMessage/request_query: request_query is named query parameters, so it "
        "cannot be a $switch as a whole (put the $switch under a parameter's name)"
    ) in _problems(switch)
    assert _problems(_doc(request_query=[1])) == [
        "error /API/SendMessage/request_query: request_query must be an object, not a list"
    ]


# -- request_parameters_in -----------------------------------------------------------------------


def test_delete_with_a_json_body() -> None:
    doc = _doc(request_method="DELETE", request_parameters_in="body")
    rendered = _render(doc)
    assert rendered.method == "DELETE"
    assert rendered.url == "https://api.example.com/messages"
    assert rendered.headers[0] == ("Content-Type", "application/json")
    assert rendered.body == b'{"from":"+61855555555","to":"+61123456789","content":"Hi & bye"}'
    assert _problems(doc) == []


def test_post_with_its_parameters_in_the_query() -> None:
    doc = _doc(request_parameters_in="query", request_content_type=FORM)
    rendered = _render(doc)
    assert rendered.url == (
        "https://api.example.com/messages?from=%2B61855555555&to=%2B61123456789"
        "&content=Hi%20%26%20bye"
    )
    assert rendered.body is None
    assert all(name != "Content-Type" for name, _ in rendered.headers)


def test_the_default_place_is_unchanged() -> None:
    get = _render(_doc(request_method="GET"))
    assert get.url.startswith("https://api.example.com/messages?from=")
    assert get.body is None
    post = _render(_doc())
    assert post.url == "https://api.example.com/messages"


def test_request_parameters_in_checks() -> None:
    doc = _doc(request_parameters_in="query")
    del doc["API"]["SendMessage"]["request_parameters"]
    assert _problems(doc) == [
        'error /API/SendMessage/request_parameters_in: request_parameters_in is "query", but '
        "the request has no request_parameters to put there"
    ]
    wrong = _doc(request_parameters_in="url")
    assert any(
        p.startswith("error /API/SendMessage/request_parameters_in") for p in _problems(wrong)
    )
    xml = _doc(
        request_parameters_in="query",
        request_content_type="application/xml",
        request_parameters="<a>$to$</a>",
    )
    assert (
        'error /API/SendMessage/request_parameters: request_parameters_in "query" sends its '
        "parameters as a query string, so request_parameters must be an object"
    ) in _problems(xml)
    body_xml = _doc(
        request_method="DELETE",
        request_parameters_in="body",
        request_content_type="application/xml",
        request_parameters="<a>$to$</a>",
    )
    assert _problems(body_xml) == []
    assert _render(body_xml).body == b"<a>+61123456789</a>"


# -- the default: filter -------------------------------------------------------------------------


def test_a_default_keeps_the_key() -> None:
    doc = _doc(
        request_parameters={"from": "$gateway_id|default:$", "to": "$to$", "n": "$gateway_id$"}
    )
    assert _render(doc).body == b'{"from":"","to":"+61123456789"}'
    assert _problems(doc) == []


def test_a_default_with_text_and_a_value() -> None:
    doc = _doc(
        request_url="https://api.example.com/m/$gateway_id|default:none$?c=$gateway_id|default:0$",
        request_content_type=FORM,
        request_parameters={"a": "$from|default:x$", "b": "[$gateway_id|default:-$]"},
    )
    assert _render(doc).url == "https://api.example.com/m/none?c=0"
    assert _render(doc).body == b"a=%2B61855555555&b=%5B-%5D"


def test_a_default_in_an_xml_body() -> None:
    doc = _doc(
        request_content_type="application/xml", request_parameters="<a>$gateway_id|default:x$</a>"
    )
    assert _render(doc).body == b"<a>x</a>"


def test_default_filter_checks() -> None:
    assert _problems(_doc(request_parameters={"a": "$gateway_id|default$"})) == [
        "error /API/SendMessage/request_parameters/a: $gateway_id|default$: the default filter "
        "names "
        "its text after a colon: $gateway_id|default:$ stands for an empty string"
    ]
    # (ext) "Value filters": a default may come before an encoding, which then writes its text
    assert _problems(_doc(request_parameters={"a": "$gateway_id|default:|base64$"})) == []
    assert _problems(_doc(request_parameters={"a": "$gateway_id|default:a|default:b$"})) == [
        "error /API/SendMessage/request_parameters/a: $gateway_id|default:a|default:b$: a "
        "placeholder takes one default:"
    ]
    webhook = _doc()
    webhook["Webhook"][2]["request_parameters"]["params"]["content"] = "$content|default:$"
    assert _problems(webhook) == []  # (ext) "Value filters": a capture's default, in a model


def test_a_failing_filter_still_fails() -> None:
    doc = _doc(request_parameters={"a": "$content|latin1_hex$"})
    with pytest.raises(RenderError):
        _render(doc, {**CALL, "content": "Привет"})


# -- $name|base_url$ -------------------------------------------------------------------------


def _based(url: str = "$API key|base_url$/messages", **send: Any) -> dict[str, Any]:
    return _doc(request_url=url, **send)


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://sms.example:8443", "https://sms.example:8443/messages"),
        ("https://sms.example:8443/gw", "https://sms.example:8443/gw/messages"),
        ("https://sms.example:8443/gw/", "https://sms.example:8443/gw/messages"),
        ("http://10.0.0.7/gw?fixed=1", "http://10.0.0.7/gw/messages?fixed=1&v=2"),
        ("https://sms.example/gw?fixed=1&", "https://sms.example/gw/messages?fixed=1&v=2"),
        ("https://sms.example/gé?x=é", "https://sms.example/g%C3%A9/messages?x=%C3%A9&v=2"),
    ],
)
def test_a_base_url_keeps_its_path_and_query(base: str, url: str) -> None:
    template = "$API key|base_url$/messages" + ("?v=2" if "v=2" in url else "")
    rendered = _render(_based(template), {**CALL, "API key": base})
    assert rendered.url == url


def test_a_base_url_merges_query_parameters_into_its_query() -> None:
    doc = _based(
        "$API key|base_url$",
        request_method="GET",
        request_query={"user": "u"},
    )
    rendered = _render(doc, {**CALL, "API key": "https://kannel.example:13013/cgi-bin/sendsms?x=1"})
    assert rendered.url == (
        "https://kannel.example:13013/cgi-bin/sendsms?x=1&user=u&from=%2B61855555555"
        "&to=%2B61123456789&content=Hi%20%26%20bye"
    )
    assert _problems(doc) == []


@pytest.mark.parametrize(
    "base",
    [
        "ftp://sms.example/gw",
        "sms.example/gw",
        "https://user:pw@sms.example/gw",
        "https://sms.example/gw#top",
        "https://sms.example/../admin",
        "https://sms.example/gw/%2e%2e/x",
        "https://sms.example:99999/gw",
        "https://sms.example/g w\n",
        "javascript:alert(1)",
    ],
)
def test_a_base_url_that_is_not_one_is_refused(base: str) -> None:
    with pytest.raises(RenderError) as error:
        _render(_based(), {**CALL, "API key": base})
    assert base not in str(error.value)  # errors never quote a value
    assert error.value.pointer == "/API/SendMessage/request_url"


def test_a_masked_base_url() -> None:
    rendered = _render(_based(), {**CALL, "API key": "https://sms.example/gw"}, masked=True)
    assert rendered.url == "••••••/messages"


def test_base_url_checks() -> None:
    assert _problems(_based("$API key|base_url$x/messages")) == [
        "error /API/SendMessage/request_url: request_url continues after $API key|base_url$ "
        "with neither / nor ?: the base URL is a whole origin and path, so the template goes on "
        "with its path or its query"
    ]
    assert _problems(_based("https://api.example.com/$API key|base_url$")) == [
        "error /API/SendMessage/request_url: $API key|base_url$: base_url is for the "
        "placeholder that opens a request_url (the value is then a whole base URL)"
    ]
    assert _problems(_doc(request_parameters={"u": "$to|base_url$"})) == [
        "error /API/SendMessage/request_parameters/u: $to|base_url$: base_url is for the "
        "placeholder that opens a request_url (the value is then a whole base URL)"
    ]
    assert _problems(_based("$API key$/messages"))[0].startswith(
        "error /API/SendMessage/request_url: request_url starts with the placeholder $API key$"
    )
    assert _problems(_based("$API key|base_url$")) == []


# -- request_omit_empty ----------------------------------------------------------------------


NESTED = {
    "to": "$to$",
    "options": {"sender": "$gateway_id$", "deep": {"x": "$gateway_id$"}},
    "kept": {},
    "list": [{"a": "$gateway_id$"}, {"b": "$to$"}],
}


def test_empty_objects_are_kept_by_default() -> None:
    assert _render(_doc(request_parameters=NESTED)).body == (
        b'{"to":"+61123456789","options":{"deep":{}},"kept":{},"list":[{},{"b":"+61123456789"}]}'
    )


def test_request_omit_empty_leaves_emptied_objects_out() -> None:
    doc = _doc(request_parameters=NESTED, request_omit_empty=True)
    assert _render(doc).body == b'{"to":"+61123456789","kept":{},"list":[{"b":"+61123456789"}]}'
    assert _problems(doc) == []
    with_value = _render(doc, {**CALL, "gateway_id": "g1"}).body
    assert with_value == (
        b'{"to":"+61123456789","options":{"sender":"g1","deep":{"x":"g1"}},"kept":{},'
        b'"list":[{"a":"g1"},{"b":"+61123456789"}]}'
    )


def test_request_omit_empty_keeps_the_top_object() -> None:
    doc = _doc(request_parameters={"o": {"a": "$gateway_id$"}}, request_omit_empty=True)
    assert _render(doc).body == b"{}"
    query = _doc(request_query={"o": {"a": "$gateway_id$"}, "b": "1"}, request_omit_empty=True)
    assert _render(query).url == "https://api.example.com/messages?b=1"


def test_request_omit_empty_checks() -> None:
    assert _problems(_doc(request_omit_empty=True)) == [
        "error /API/SendMessage/request_omit_empty: request_omit_empty leaves out objects nested "
        "in request_parameters or request_query, but this request has none: it would change "
        "nothing"
    ]
    assert any(
        p.startswith("error /API/SendMessage/request_omit_empty")
        for p in _problems(_doc(request_omit_empty="yes"))
    )
