"""render_request: a RequestTemplate plus variables into the exact HTTP request (docs/format.md,
"Requests")."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from _request_templates import definition, header, multipart_fields, request

from server.engine import (
    BasicAuth,
    BearerAuth,
    Definition,
    HeaderAuth,
    JwtAuth,
    OAuth2Config,
    Property,
    RenderedRequest,
    RenderError,
    RequestTemplate,
    compile_requests,
    freeze,
    render_request,
    template_variables,
)
from server.engine._render import MASK

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# The seed's API section, as written there.
SEED_SEND_MESSAGE = request(
    {
        "from": "$from$",
        "to": "$to$",
        "extension": "$extension$",
        "domain": "$domain$",
        "content": "$content$",
    },
    url="https://api.example.com/webhook",
)
SEED_SEND_FILE = request(
    {
        "from": "$from$",
        "to": "$to$",
        "extension": "$extension$",
        "domain": "$domain$",
        "media_url": "$content$",
    },
    url="https://api.example.com/webhook",
    pointer="/API/SendFile",
)
SEED_SUBSCRIBE = request(
    {"domain": "$Domain$", "user": "*", "model": "message", "post-url": "$webhook_url$"},
    url="https://$Server$/ns-api/v2/subscriptions",
    pointer="/Subscribe",
)
SEED_PROPERTIES = (Property(name="API key"), Property(name="Server"), Property(name="Domain"))
SEED = definition(
    SEED_SEND_MESSAGE,
    send_file=SEED_SEND_FILE,
    subscribe=(SEED_SUBSCRIBE,),
    properties=SEED_PROPERTIES,
    auth=BearerAuth(token="$API key$"),
)
CALL = {
    "from": "+61855555555",
    "to": "+61123456789",
    "extension": "101",
    "domain": "acme.example",
    "API key": "k-123",
    "Server": "pbx.example.com",
    "Domain": "acme",
    "webhook_url": "https://gw.example.org/webhooks/t0k3n",
}


def render(template: RequestTemplate, variables: dict[str, Any], **kwargs: Any) -> RenderedRequest:
    defn = kwargs.pop("defn", None) or definition(template)
    return render_request(defn, template, variables, **kwargs)


def json_body(rendered: RenderedRequest) -> Any:
    assert rendered.body is not None
    return json.loads(rendered.body.decode("utf-8"))


def form_body(rendered: RenderedRequest) -> list[tuple[str, str]]:
    assert rendered.body is not None
    return parse_qsl(rendered.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)


# --- the seed's examples ----------


def test_seed_send_message_is_a_json_post_with_bearer_auth() -> None:
    rendered = render_request(SEED, SEED.send_message, {**CALL, "content": "Hello there!"})
    assert rendered.method == "POST"
    assert rendered.url == "https://api.example.com/webhook"
    assert rendered.headers == (
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer k-123"),
    )
    assert json_body(rendered) == {
        "from": "+61855555555",
        "to": "+61123456789",
        "extension": "101",
        "domain": "acme.example",
        "content": "Hello there!",
    }


def test_seed_send_file_puts_the_media_url_in_media_url() -> None:
    assert SEED.send_file is not None
    url = "https://your.server.com/files/8a8d89798as9ud.jpeg"
    rendered = render_request(SEED, SEED.send_file, {**CALL, "content": url})
    assert json_body(rendered)["media_url"] == url
    assert "content" not in json_body(rendered)


def test_seed_subscribe_takes_its_host_from_a_property() -> None:
    rendered = render_request(SEED, SEED.subscribe[0], CALL)
    assert rendered.url == "https://pbx.example.com/ns-api/v2/subscriptions"
    assert json_body(rendered) == {
        "domain": "acme",
        "user": "*",
        "model": "message",
        "post-url": "https://gw.example.org/webhooks/t0k3n",
    }


# --- template trees ----------


def test_a_variable_without_a_value_leaves_its_key_out() -> None:
    template = request({"to": "$to$", "text": "$text$", "extension": "$extension$"})
    rendered = render(template, {"to": "+1555", "extension": None})
    assert json_body(rendered) == {"to": "+1555"}


def test_a_variable_without_a_value_leaves_its_list_item_out() -> None:
    template = request({"media": ["$content$", "$text$", "fixed"]})
    assert json_body(render(template, {"content": "https://x/y.png"})) == {
        "media": ["https://x/y.png", "fixed"]
    }


def test_an_empty_string_is_a_value() -> None:
    assert json_body(render(request({"text": "$text$"}), {"text": ""})) == {"text": ""}


def test_a_sole_placeholder_keeps_the_type_of_a_list() -> None:
    template = request({"to": "$to$", "first": ["$to$"]})
    body = json_body(render(template, {"to": ("+1555", "+1666")}))
    assert body == {"to": ["+1555", "+1666"], "first": [["+1555", "+1666"]]}


def test_numbers_booleans_and_null_pass_through() -> None:
    template = request({"n": 3, "f": 1.5, "t": True, "no": False, "nil": None, "deep": [{"x": 0}]})
    assert json_body(render(template, {})) == {
        "n": 3,
        "f": 1.5,
        "t": True,
        "no": False,
        "nil": None,
        "deep": [{"x": 0}],
    }


def test_a_placeholder_inside_a_longer_string_is_interpolated() -> None:
    template = request({"text": "From $extension$@$domain$: $content$", "list": "to=$to$"})
    body = json_body(render(template, {"extension": "101", "content": "hi", "to": ("a", "b")}))
    assert body == {"text": "From 101@: hi", "list": "to=a,b"}


def test_values_are_substituted_once_and_never_rescanned() -> None:
    content = "costs $5 $to$ and $$ and $API key$"
    template = request({"content": "$content$", "echo": "[$content$]"})
    body = json_body(render(template, {"content": content, "to": "+1555", "API key": "secret"}))
    assert body == {"content": content, "echo": f"[{content}]"}


def test_a_doubled_dollar_in_the_template_is_one_dollar() -> None:
    template = request({"price": "$$5", "note": "$$$to$$$"})
    assert json_body(render(template, {"to": "x"})) == {"price": "$5", "note": "$x$"}


def test_object_keys_are_literal() -> None:
    template = request({"$to$": "$to$"})
    assert json_body(render(template, {"to": "a"})) == {"$to$": "a"}


def test_text_is_carried_exactly_in_json() -> None:
    text = 'quote " backslash \\ newline \n tab \t emoji 😀 accents é 中文 \u2028 end'
    rendered = render(request({"content": "$content$"}), {"content": text})
    assert rendered.body is not None
    assert json.loads(rendered.body) == {"content": text}
    assert "😀".encode() in rendered.body  # UTF-8, not \u escapes


def test_json_is_used_for_any_plus_json_type_and_a_charset_is_kept() -> None:
    template = request({"to": "$to$"}, content_type="application/vnd.api+json; charset=utf-8")
    rendered = render(template, {"to": "+1"})
    assert header(rendered.headers, "Content-Type") == "application/vnd.api+json; charset=utf-8"
    assert json_body(rendered) == {"to": "+1"}


def test_a_top_level_list_is_a_json_body() -> None:
    rendered = render(request(["$to$", {"a": "$text$"}]), {"to": "x"})
    assert json_body(rendered) == ["x", {}]


# --- form bodies ----------


def test_form_body_flattens_nested_keys_and_repeats_lists() -> None:
    template = request(
        {
            "To": "$to$",
            "Body": "$content$",
            "price": {"amount": 2, "currency": "EUR", "meta": {"x": "y"}},
            "flags": [True, False],
            "skip": None,
            "absent": "$text$",
        },
        content_type=FORM,
    )
    rendered = render(template, {"to": ("+1555", "+1666"), "content": "a b&c=d+e"})
    assert header(rendered.headers, "Content-Type") == FORM
    assert form_body(rendered) == [
        ("To", "+1555"),
        ("To", "+1666"),
        ("Body", "a b&c=d+e"),
        ("price[amount]", "2"),
        ("price[currency]", "EUR"),
        ("price[meta][x]", "y"),
        ("flags", "true"),
        ("flags", "false"),
    ]


def test_form_content_type_keeps_its_charset() -> None:
    template = request({"a": "1"}, content_type="application/x-www-form-urlencoded;charset=utf-8")
    rendered = render(template, {})
    assert (
        header(rendered.headers, "Content-Type")
        == "application/x-www-form-urlencoded;charset=utf-8"
    )
    assert form_body(rendered) == [("a", "1")]


def test_form_text_is_utf8_percent_encoded() -> None:
    text = "é 😀\r\n\"'\\%+"
    rendered = render(request({"t": "$content$"}, content_type=FORM), {"content": text})
    assert form_body(rendered) == [("t", text)]


def test_form_needs_an_object() -> None:
    with pytest.raises(RenderError) as raised:
        render(request(["$to$"], content_type=FORM), {"to": "x"})
    assert raised.value.pointer == "/API/SendMessage/request_parameters"


# --- multipart bodies ----------


def test_multipart_sends_the_same_fields_as_parts() -> None:
    template = request(
        {"to": "$to$", "body": "$content$", "o": {"k": 1}, "no": None}, content_type=MULTIPART
    )
    rendered = render(template, {"to": ("a", "b"), "content": "line1\r\nline2 😀"}, boundary="XyZ")
    assert header(rendered.headers, "Content-Type") == "multipart/form-data; boundary=XyZ"
    assert rendered.body is not None and rendered.body.startswith(b"--XyZ\r\n")
    assert rendered.body.endswith(b"--XyZ--\r\n")
    assert multipart_fields(rendered.body, "multipart/form-data; boundary=XyZ") == [
        ("to", "a"),
        ("to", "b"),
        ("body", "line1\r\nline2 😀"),
        ("o[k]", "1"),
    ]


def test_multipart_derives_a_deterministic_boundary_absent_from_the_content() -> None:
    template = request({"body": "$content$"}, content_type=MULTIPART)
    first = render(template, {"content": "hello"})
    again = render(template, {"content": "hello"})
    other = render(template, {"content": "hello!"})
    assert first == again
    content_type = header(first.headers, "Content-Type")
    assert content_type is not None and content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=")[1]
    assert header(other.headers, "Content-Type") != content_type
    # Content that quotes the first boundary gets another one.
    tricky = render(template, {"content": f"--{boundary}\r\nx"})
    tricky_type = header(tricky.headers, "Content-Type")
    assert tricky_type is not None and boundary not in tricky_type
    assert tricky.body is not None
    assert multipart_fields(tricky.body, tricky_type) == [("body", f"--{boundary}\r\nx")]


def test_a_given_boundary_that_occurs_in_the_content_is_refused() -> None:
    template = request({"body": "$content$"}, content_type=MULTIPART)
    with pytest.raises(RenderError):
        render(template, {"content": "a --b0undary b"}, boundary="b0undary")


def test_multipart_keeps_a_declared_charset() -> None:
    template = request({"a": "1"}, content_type="multipart/form-data; charset=utf-8")
    rendered = render(template, {}, boundary="b")
    assert (
        header(rendered.headers, "Content-Type") == "multipart/form-data; charset=utf-8; boundary=b"
    )


def test_multipart_escapes_quotes_and_line_breaks_in_field_names() -> None:
    template = request({'we"ird\nname': "1"}, content_type=MULTIPART)
    rendered = render(template, {}, boundary="b")
    assert rendered.body is not None
    assert b'name="we%22ird%0Aname"' in rendered.body


# --- query parameters ----------


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_put_the_parameters_in_the_query(method: str) -> None:
    template = request(
        {"to": "$to$", "text": "$content$", "o": {"k": True}, "gone": "$text$"},
        method=method,
        url="https://api.example.com/send?api=v2#top",
        content_type=FORM,
    )
    rendered = render(template, {"to": ("+1555", "+1666"), "content": "a b&c=d#e"})
    assert rendered.method == method
    assert rendered.body is None
    assert header(rendered.headers, "Content-Type") is None
    parts = urlsplit(rendered.url)
    assert parts.fragment == "top"
    assert parse_qsl(parts.query, strict_parsing=True) == [
        ("api", "v2"),
        ("to", "+1555"),
        ("to", "+1666"),
        ("text", "a b&c=d#e"),
        ("o[k]", "true"),
    ]


def test_a_get_without_a_query_in_its_url_gets_one() -> None:
    template = request({"a": "$to$"}, method="GET")
    assert render(template, {"to": "1"}).url == "https://api.example.com/messages?a=1"


def test_a_get_whose_url_query_ends_with_a_separator_adds_no_empty_field() -> None:
    template = request({"a": "$to$"}, method="GET", url="https://api.example.com/m?v=1&")
    assert render(template, {"to": "1"}).url == "https://api.example.com/m?v=1&a=1"
    bare = request({"a": "$to$"}, method="GET", url="https://api.example.com/m?")
    assert render(bare, {"to": "1"}).url == "https://api.example.com/m?a=1"


def test_a_get_whose_parameters_are_all_absent_adds_no_query() -> None:
    template = request({"a": "$to$"}, method="GET")
    assert render(template, {}).url == "https://api.example.com/messages"


def test_no_parameters_means_no_body_and_no_content_type() -> None:
    rendered = render(request(None, method="POST"), {})
    assert rendered.body is None
    assert header(rendered.headers, "Content-Type") is None


def test_a_content_type_the_engine_cannot_write_is_an_error_at_its_pointer() -> None:
    # (application/xml until XML bodies were written: docs/format.md, "XML bodies")
    template = request({"a": "1"}, content_type="text/csv")
    with pytest.raises(RenderError) as raised:
        render(template, {})
    assert raised.value.pointer == "/API/SendMessage/request_content_type"


# --- authentication and headers ----------


def test_basic_auth_encodes_the_rendered_username_and_password() -> None:
    props = (Property(name="User"), Property(name="Password"))
    defn = definition(properties=props, auth=BasicAuth(username="$User$", password="pw-$Password$"))
    rendered = render_request(defn, defn.send_message, {"User": "ACé", "Password": "p:ss"})
    value = header(rendered.headers, "Authorization")
    assert value is not None and value.startswith("Basic ")
    assert base64.b64decode(value[6:]).decode("utf-8") == "ACé:pw-p:ss"


def test_bearer_auth() -> None:
    defn = definition(auth=BearerAuth(token="$API key$"))
    rendered = render_request(defn, defn.send_message, {"API key": "tok"})
    assert header(rendered.headers, "Authorization") == "Bearer tok"


def test_header_auth_renders_each_header() -> None:
    auth = HeaderAuth(headers=freeze({"X-API-Key": "$API key$", "X-Client": "msgbridge"}))  # type: ignore[arg-type]
    defn = definition(auth=auth)
    rendered = render_request(defn, defn.send_message, {"API key": "k"})
    assert rendered.headers[1:] == (("X-API-Key", "k"), ("X-Client", "msgbridge"))


def test_an_auth_header_replaces_a_content_type_of_the_same_name() -> None:
    auth = HeaderAuth(headers=freeze({"content-type": "application/json; v=2"}))  # type: ignore[arg-type]
    defn = definition(auth=auth)
    rendered = render_request(defn, defn.send_message, {"to": "1"})
    assert rendered.headers == (("content-type", "application/json; v=2"),)


def test_jwt_auth_sends_the_callers_signed_token() -> None:
    auth = JwtAuth(algorithm="RS256", key="$Private key$", claims=freeze({"application_id": "x"}))
    defn = definition(auth=auth, properties=(Property(name="Private key"),))
    rendered = render_request(defn, defn.send_message, {"to": "1"}, bearer_token="eyJ.a.b")
    assert header(rendered.headers, "Authorization") == "Bearer eyJ.a.b"
    without = render_request(defn, defn.send_message, {"to": "1"})
    assert header(without.headers, "Authorization") is None


def test_oauth2_sends_the_callers_access_token() -> None:
    oauth2 = OAuth2Config(
        client_id="$Client ID$",
        client_secret="$Client Secret$",
        flow_type="1",
        authorization_endpoint=None,
        authorization_parameters="",
        token_endpoint="https://login.example.com/token",
        token_content_type=FORM,
    )
    defn = definition(oauth2=oauth2)
    rendered = render_request(defn, defn.send_message, {}, bearer_token="at-1")
    assert header(rendered.headers, "Authorization") == "Bearer at-1"


def test_headers_come_in_order_content_type_auth_request_headers() -> None:
    template = request(
        {"a": "1"}, headers={"X-Trace": "t-$gateway_id$", "Accept": "application/json"}
    )
    defn = definition(template, auth=BearerAuth(token="$API key$"))
    rendered = render_request(defn, template, {"API key": "k", "gateway_id": "g1"})
    assert rendered.headers == (
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer k"),
        ("X-Trace", "t-g1"),
        ("Accept", "application/json"),
    )


def test_request_headers_override_auth_and_content_type_case_insensitively() -> None:
    template = request(
        {"a": "1"},
        headers={
            "authorization": "App $API key$",
            "content-type": "application/json; charset=utf-8",
        },
    )
    defn = definition(template, auth=BearerAuth(token="$API key$"))
    rendered = render_request(defn, template, {"API key": "k"})
    assert rendered.headers == (
        ("content-type", "application/json; charset=utf-8"),
        ("authorization", "App k"),
    )


def test_a_header_that_is_one_placeholder_without_a_value_is_left_out() -> None:
    template = request({"a": "1"}, headers={"X-Ref": "$gateway_id$", "X-Org": "org-$orgid$"})
    rendered = render(template, {})
    assert header(rendered.headers, "X-Ref") is None
    assert header(rendered.headers, "X-Org") == "org-"


@pytest.mark.parametrize("bad", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
def test_a_value_cannot_inject_a_header(bad: str) -> None:
    template = request({"a": "1"}, headers={"X-Ref": "ref-$gateway_id$"})
    with pytest.raises(RenderError) as raised:
        render(template, {"gateway_id": bad})
    assert raised.value.pointer == "/API/SendMessage/request_headers/X-Ref"
    assert bad not in str(raised.value)


def test_an_auth_value_cannot_inject_a_header() -> None:
    defn = definition(auth=BearerAuth(token="$API key$"))
    with pytest.raises(RenderError):
        render_request(defn, defn.send_message, {"API key": "k\r\nX-Evil: 1"})
    jwt = definition(auth=JwtAuth(algorithm="HS256", key="$API key$", claims=None))
    with pytest.raises(RenderError):
        render_request(jwt, jwt.send_message, {}, bearer_token="t\nX: y")


# --- URLs ----------


def subscribe(url: str) -> RequestTemplate:
    return request(None, url=url, pointer="/Subscribe")


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("pbx.example.com", "https://pbx.example.com/ns-api"),
        ("PBX.Example.com:8443", "https://PBX.Example.com:8443/ns-api"),
        ("192.0.2.7", "https://192.0.2.7/ns-api"),
        ("192.0.2.7:80", "https://192.0.2.7:80/ns-api"),
        ("[2001:db8::1]", "https://[2001:db8::1]/ns-api"),
        ("[2001:db8::1]:8443", "https://[2001:db8::1]:8443/ns-api"),
        ("bücher.example", "https://xn--bcher-kva.example/ns-api"),
        ("my_host.internal", "https://my_host.internal/ns-api"),
    ],
)
def test_a_host_value_may_be_a_host_name_or_address_with_a_port(server: str, expected: str) -> None:
    assert render(subscribe("https://$Server$/ns-api"), {"Server": server}).url == expected


@pytest.mark.parametrize(
    "server",
    [
        "evil.example/x",
        "evil.example?x=1",
        "evil.example#",
        "user@evil.example",
        "evil.example\\x",
        "evil example",
        "",
        "a..b",
        "-a.example",
        "1.2.3",
        "256.1.1.1",
        "[::zz]",
        "host:0",
        "host:70000",
        "host:12ab",
        "a:1:2",
        "x" * 64 + ".example",
    ],
)
def test_a_host_value_that_is_not_a_host_is_refused(server: str) -> None:
    with pytest.raises(RenderError) as raised:
        render(subscribe("https://$Server$/ns-api"), {"Server": server})
    assert raised.value.pointer == "/Subscribe/request_url"


def test_a_host_value_can_be_part_of_a_host_name() -> None:
    template = subscribe("https://$Server$.example.com/v1")
    assert render(template, {"Server": "eu1"}).url == "https://eu1.example.com/v1"
    with pytest.raises(RenderError):
        render(template, {"Server": "evil.example/"})


def test_a_leading_value_may_carry_an_http_scheme_and_host() -> None:
    template = subscribe("$Base URL$/v2/messages")
    url = render(template, {"Base URL": "https://api.example.com:8443"}).url
    assert url == "https://api.example.com:8443/v2/messages"
    for bad in (
        "ftp://api.example.com",
        "javascript:alert(1)//",
        "https://a.example/x",
        "a.example",
    ):
        with pytest.raises(RenderError):
            render(template, {"Base URL": bad})


@pytest.mark.parametrize(
    "url",
    ["ftp://api.example.com/x", "file:///etc/passwd", "//api.example.com/x", "api.example.com"],
)
def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(RenderError) as raised:
        render(subscribe(url), {})
    assert raised.value.pointer == "/Subscribe/request_url"


def test_a_scheme_from_a_value_must_be_http_or_https() -> None:
    template = subscribe("$Scheme$://api.example.com/x")
    assert render(template, {"Scheme": "http"}).url == "http://api.example.com/x"
    with pytest.raises(RenderError):
        render(template, {"Scheme": "gopher"})


def test_a_path_value_is_one_encoded_segment() -> None:
    template = subscribe("https://api.example.com/Accounts/$Account$/Messages.json")
    url = render(template, {"Account": "AC1/../../admin?x=1#y %"}).url
    parts = urlsplit(url)
    assert parts.hostname == "api.example.com"
    assert parts.query == "" and parts.fragment == ""
    segments = parts.path.split("/")
    assert len(segments) == 4
    assert unquote(segments[2]) == "AC1/../../admin?x=1#y %"


@pytest.mark.parametrize("value", [".", ".."])
def test_a_path_value_cannot_be_a_dot_segment(value: str) -> None:
    with pytest.raises(RenderError):
        render(subscribe("https://api.example.com/a/$x$/b"), {"x": value})
    with pytest.raises(RenderError):
        render(subscribe("https://api.example.com/a/.$x$/b"), {"x": "."})


def test_a_literal_dot_segment_and_dotted_values_are_left_alone() -> None:
    template = subscribe("https://api.example.com/a/../$x$")
    assert render(template, {"x": "..."}).url == "https://api.example.com/a/../..."
    assert render(template, {"x": "v1.2"}).url == "https://api.example.com/a/../v1.2"


def test_a_query_value_cannot_add_keys() -> None:
    template = subscribe("https://api.example.com/send?key=$API key$&to=$to$")
    url = render(template, {"API key": "k&admin=1", "to": "+1 555#x"}).url
    assert parse_qsl(urlsplit(url).query, strict_parsing=True) == [
        ("key", "k&admin=1"),
        ("to", "+1 555#x"),
    ]
    assert urlsplit(url).fragment == ""


def test_a_fragment_value_is_encoded() -> None:
    url = render(subscribe("https://api.example.com/x#$to$"), {"to": "a b#c"}).url
    assert url == "https://api.example.com/x#a%20b%23c"


def test_literal_url_text_keeps_its_encoding_and_non_ascii_is_encoded() -> None:
    url = render(subscribe("https://api.example.com/a%2Fb/é?q=%20"), {}).url
    assert url == "https://api.example.com/a%2Fb/%C3%A9?q=%20"


# --- masking ----------

SECRET_TEMPLATE = request(
    {"key": "$API key$", "note": "key=$API key$", "user": "$User$", "to": "$to$"},
    url="https://api.example.com/$API key$/send?token=$API key$&user=$User$",
    headers={"X-Key": "App $API key$"},
)
MASKING = definition(
    SECRET_TEMPLATE,
    properties=(Property(name="API key"), Property(name="User", secret=False)),
    auth=BearerAuth(token="$API key$"),
)


def test_masking_replaces_secret_values_where_the_template_put_them() -> None:
    variables = {"API key": "s3cr3t", "User": "alice", "to": "s3cr3t"}
    rendered = render_request(MASKING, SECRET_TEMPLATE, variables, masked=True)
    assert rendered.url == f"https://api.example.com/{MASK}/send?token={MASK}&user=alice"
    assert json_body(rendered) == {
        "key": MASK,
        "note": f"key={MASK}",
        "user": "alice",
        "to": "s3cr3t",  # the same text as a request variable is not a secret: no text search
    }
    assert header(rendered.headers, "Authorization") == f"Bearer {MASK}"
    assert header(rendered.headers, "X-Key") == f"App {MASK}"


def test_an_unmasked_rendering_shows_the_secret() -> None:
    rendered = render_request(MASKING, SECRET_TEMPLATE, {"API key": "s3cr3t", "User": "alice"})
    assert header(rendered.headers, "X-Key") == "App s3cr3t"
    assert "s3cr3t" in rendered.url


def test_masking_hides_basic_credentials_when_any_part_is_secret() -> None:
    props = (Property(name="User", secret=False), Property(name="Password"))
    defn = definition(properties=props, auth=BasicAuth(username="$User$", password="$Password$"))
    rendered = render_request(defn, defn.send_message, {"User": "u", "Password": "p"}, masked=True)
    assert header(rendered.headers, "Authorization") == f"Basic {MASK}"
    public = definition(
        properties=(Property(name="User", secret=False),),
        auth=BasicAuth(username="$User$", password="x"),
    )
    shown = render_request(public, public.send_message, {"User": "u"}, masked=True)
    assert header(shown.headers, "Authorization") == "Basic " + base64.b64encode(b"u:x").decode()


def test_masking_hides_the_bearer_token() -> None:
    defn = definition(auth=JwtAuth(algorithm="HS256", key="$API key$", claims=None))
    rendered = render_request(defn, defn.send_message, {}, bearer_token="eyJ.x.y", masked=True)
    assert header(rendered.headers, "Authorization") == f"Bearer {MASK}"


def test_masking_hides_a_secret_host_and_form_fields() -> None:
    template = request(
        {"key": "$API key$"}, url="https://$Server$/x", content_type=FORM, pointer="/Subscribe"
    )
    defn = definition(template, properties=(Property(name="API key"), Property(name="Server")))
    rendered = render_request(
        defn, template, {"API key": "k", "Server": "pbx.example.com"}, masked=True
    )
    assert rendered.url == f"https://{MASK}/x"
    assert form_body(rendered) == [("key", MASK)]


def test_a_masked_rendering_fails_where_the_real_one_would() -> None:
    template = request(None, url="https://$Server$/x", pointer="/Subscribe")
    defn = definition(template, properties=(Property(name="Server"),))
    with pytest.raises(RenderError):
        render_request(defn, template, {"Server": "evil.example/x"}, masked=True)


# --- number formats ----------

NUMBERS = request({"from": "$from$", "to": "$to$", "n": "$number$", "content": "$content$"})


@pytest.mark.parametrize(
    ("number_format", "expected"),
    [
        ("as_given", "(555) 123-4567"),
        ("e164", "+15551234567"),
        ("e164_digits", "15551234567"),
        ("national", "5551234567"),
    ],
)
def test_number_format_applies_to_from_to_and_number(number_format: Any, expected: str) -> None:
    defn = definition(NUMBERS, number_format=number_format)
    variables = {"from": "(555) 123-4567", "to": "(555) 123-4567", "number": "(555) 123-4567"}
    body = json_body(
        render_request(
            defn, NUMBERS, {**variables, "content": "(555) 123-4567"}, default_region="US"
        )
    )
    assert body == {"from": expected, "to": expected, "n": expected, "content": "(555) 123-4567"}


@pytest.mark.parametrize(
    ("number_format", "given", "expected"),
    [
        ("e164", "+447700900123", "+447700900123"),
        ("e164_digits", "+447700900123", "447700900123"),
        ("national", "+447700900123", "07700900123"),
        ("national", "+15551234567", "5551234567"),
        ("e164", "+1 (555) 123-4567", "+15551234567"),
    ],
)
def test_international_input_needs_no_region(number_format: Any, given: str, expected: str) -> None:
    defn = definition(NUMBERS, number_format=number_format)
    assert json_body(render_request(defn, NUMBERS, {"to": given}))["to"] == expected


@pytest.mark.parametrize(
    "given", ["ACME", "12345", "5551234567", "+1", "SHOP-555-1234", "555 FLOWERS"]
)
def test_a_number_that_cannot_be_parsed_is_sent_as_given(given: str) -> None:
    defn = definition(NUMBERS, number_format="e164")
    # No default region: a national number cannot be read.
    assert json_body(render_request(defn, NUMBERS, {"to": given}))["to"] == given


def test_number_format_applies_to_each_number_of_a_list() -> None:
    defn = definition(NUMBERS, number_format="e164")
    body = json_body(
        render_request(defn, NUMBERS, {"to": ("5551234567", "ACME")}, default_region="us")
    )
    assert body["to"] == ["+15551234567", "ACME"]


# --- template_variables ----------


def test_template_variables_lists_every_placeholder_of_the_request() -> None:
    template = request(
        {"a": "$from$", "b": ["x $to$ y", {"c": "$number$"}], "d": 1},
        url="https://$Server$/v1/$orgid$?cb=$webhook_url$",
        headers={"X-Key": "App $API key$"},
    )
    assert template_variables(template) == frozenset(
        {"from", "to", "number", "Server", "orgid", "webhook_url", "API key"}
    )
    assert template_variables(request(None)) == frozenset()


def test_rendering_is_deterministic_and_independent_of_earlier_calls() -> None:
    defn: Definition = SEED
    first = render_request(defn, defn.send_message, {**CALL, "content": "a"})
    render_request(defn, defn.send_message, {**CALL, "content": "b", "to": "x"})
    assert render_request(defn, defn.send_message, {**CALL, "content": "a"}) == first


def test_requests_compiled_ahead_are_the_ones_a_render_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.engine import _render

    send_file = request({"url": "$url$"}, pointer="/API/SendFile")
    subscribe = request({"hook": "$webhook_url$"}, pointer="/API/Subscribe/0")
    broken = request({"to": "$to$"}, headers={"Bad Header": "x"}, pointer="/API/Subscribe/1")
    example = definition(SEED_SEND_MESSAGE, send_file=send_file, subscribe=(subscribe, broken))

    compile_requests(example)  # the broken header is left for its render to report

    def no_compile(template: RequestTemplate) -> object:
        raise AssertionError(f"{template.pointer} compiled at render time")

    monkeypatch.setattr(_render._requests, "_compile", no_compile)
    variables = {"from": "+15550001111", "to": "+15550002222", "content": "hi", "API key": "k"}
    sent = render_request(example, SEED_SEND_MESSAGE, variables)
    assert json.loads(sent.body or b"")["content"] == "hi"
    assert render_request(example, send_file, {**variables, "url": "https://f.test/a"}).body
    assert render_request(example, subscribe, {**variables, "webhook_url": "https://h.test"}).body
    with pytest.raises(AssertionError, match="/API/Subscribe/1 compiled at render time"):
        render_request(example, broken, variables)
