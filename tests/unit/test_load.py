"""load_definition / check_definition: the seed loads, every mistake is reported at its pointer,
and nothing but DefinitionError ever escapes, whatever the input."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from _guard import run_guarded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import (
    BasicAuth,
    BearerAuth,
    Definition,
    DefinitionError,
    EventType,
    HeaderAuth,
    JwtAuth,
    Problem,
    check_definition,
    load_definition,
    thaw,
)

DEFINITIONS = Path(__file__).resolve().parents[1] / "fixtures" / "definitions"
ROOT = Path(__file__).resolve().parents[2]
SEED = sorted((DEFINITIONS / "seed").glob("*.json"))
EXTENDED = sorted((DEFINITIONS / "extended").glob("*.json"))
BROKEN = json.loads((DEFINITIONS / "broken" / "expected.json").read_text(encoding="utf-8"))


def template() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEFINITIONS / "seed" / "complete_example.json").read_text())
    return doc


def problems_of(data: object) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(data)]  # type: ignore[arg-type]


# -- what must load -------------------------------------------------------------------------------


def test_the_fixture_sets_are_there() -> None:
    names = {path.name for path in SEED}
    assert {"complete_example.json", "fragments_basic.json", "fragments_bearer.json"} <= names
    assert "fragments_oauth2.json" in names
    assert len(BROKEN) >= 25


@pytest.mark.parametrize("path", SEED + EXTENDED, ids=lambda p: p.name)
def test_seed_and_extended_definitions_have_no_problem_at_all(path: Path) -> None:
    assert check_definition(path.read_bytes()) == ()
    definition = load_definition(path.read_bytes())
    assert definition.warnings == ()


def test_the_shipped_template_is_the_seed_example_with_a_schema_reference() -> None:
    shipped = json.loads((ROOT / "integrations" / "template.json").read_text())
    assert shipped.pop("$schema") == "./schema.json"
    assert shipped == template()
    assert load_definition(json.dumps({"$schema": "./schema.json", **shipped})).id == "YourService"


def test_the_complete_example_becomes_a_typed_definition() -> None:
    d = load_definition((DEFINITIONS / "seed" / "complete_example.json").read_bytes())
    assert (d.id, d.name, d.class_, d.logo) == (
        "YourService",
        "YourService",
        "sms",
        "https://example.com/assets/logo.png",
    )
    assert [(p.name, p.secret, p.required) for p in d.properties] == [("API key", True, True)]
    assert d.auth == BearerAuth(token="$API key$")
    assert d.oauth2 is None
    assert d.send_message.pointer == "/API/SendMessage"
    assert d.send_message.method == "POST"
    assert d.send_message.url == "https://api.example.com/messages"
    assert d.send_message.content_type == "application/json"
    assert thaw(d.send_message.parameters) == {
        "from": "$from$",
        "to": "$to$",
        "content": "$content$",
    }
    assert thaw(d.send_message.response_map) == {"data": {"id": "$messageid$"}}
    assert d.send_file is not None and d.send_file.pointer == "/API/SendFile"
    assert [(w.pointer, w.index, w.event_key, w.event_type, w.method) for w in d.webhooks] == [
        ("/Webhook/0", 0, "delivered", EventType.MESSAGE_DELIVERED, "POST"),
        ("/Webhook/1", 1, "file", EventType.MMS, "POST"),
        ("/Webhook/2", 2, "message", EventType.MESSAGE, "POST"),
    ]
    assert thaw(d.webhooks[0].parameters) == {
        "method": "$event_key$",
        "params": {"messageid": "$messageid$"},
    }
    assert (d.subscribe, d.unsubscribe, d.webhook_auth, d.number_format) == (
        (),
        (),
        None,
        "as_given",
    )
    assert thaw(d.source) == template()


def test_a_definition_is_immutable() -> None:
    d = load_definition(template())
    with pytest.raises(AttributeError):
        d.id = "other"  # type: ignore[misc]
    parameters = d.send_message.parameters
    assert isinstance(parameters, MappingProxyType)
    with pytest.raises(TypeError):
        parameters["to"] = "x"  # type: ignore[index]


def test_the_seed_auth_kinds_and_subscribe() -> None:
    basic = load_definition((DEFINITIONS / "seed" / "fragments_basic.json").read_bytes())
    assert basic.auth == BasicAuth(username="$Username$", password="$Password$")
    assert [s.pointer for s in basic.subscribe] == ["/Subscribe"]
    assert basic.subscribe[0].url == "https://$Server$/ns-api/v2/subscriptions"
    assert basic.subscribe[0].content_type == "application/json"
    assert thaw(basic.send_file.parameters)["media_url"] == "$content$"  # type: ignore[union-attr]

    oauth = load_definition((DEFINITIONS / "seed" / "fragments_oauth2.json").read_bytes())
    assert oauth.auth is None
    assert oauth.oauth2 is not None
    assert oauth.oauth2.flow_type == "0"
    assert oauth.oauth2.client_id == "$Client ID$"
    assert oauth.oauth2.authorization_parameters == "scope=api%20refresh_token"
    assert oauth.oauth2.token_endpoint == "https://login.example.com/services/oauth2/token"
    assert oauth.oauth2.token_content_type == "application/x-www-form-urlencoded;charset=utf-8"
    assert oauth.oauth2.request_auth == "Bearer"


def test_oauth2_defaults() -> None:
    doc = template()
    del doc["auth"]
    doc["properties"] = ["Client ID", "Client Secret"]
    doc["OAuth2"] = {
        "client_id": "$Client ID$",
        "client_secret": "$Client Secret$",
        "flow_type": {"default": "1"},
        "token_endpoint": "https://login.example.com/token",
    }
    oauth = load_definition(doc).oauth2
    assert oauth is not None
    assert (oauth.flow_type, oauth.authorization_endpoint, oauth.authorization_parameters) == (
        "1",
        None,
        "",
    )
    assert oauth.token_content_type == "application/x-www-form-urlencoded"


def test_the_extensions_become_typed_values() -> None:
    d = load_definition((DEFINITIONS / "extended" / "header_auth_everything.json").read_bytes())
    assert d.auth == HeaderAuth(headers=MappingProxyType({"X-API-Key": "$API key$"}))
    assert [(p.name, p.secret, p.required, p.default) for p in d.properties] == [
        ("API key", True, True, None),
        ("Account", False, True, None),
        ("Region", False, False, "us"),
        ("Webhook secret", True, True, None),
    ]
    assert d.properties[1].description == "The account id"
    assert d.number_format == "e164"
    assert dict(d.send_message.headers) == {
        "X-Client-Ref": "$gateway_id$",
        "Accept": "application/json",
    }
    assert d.send_message.content_type == "application/x-www-form-urlencoded"
    assert d.send_file is not None and d.send_file.response_map == "$messageid$"
    assert [s.pointer for s in d.subscribe] == ["/Subscribe/0", "/Subscribe/1"]
    assert [(s.method, s.content_type) for s in d.subscribe] == [
        ("PUT", "application/vnd.api+json"),
        ("GET", "application/json"),
    ]
    assert [s.pointer for s in d.unsubscribe] == ["/Unsubscribe"]
    assert d.webhook_auth is not None and d.webhook_auth.type == "hmac"
    assert d.webhook_auth.options["signed"] == "timestamp.body"
    assert "type" not in d.webhook_auth.options
    assert [w.each for w in d.webhooks] == ["/results", "/results", None, None, None]
    assert d.webhooks[2].event_type is EventType.MESSAGE_FAILED
    assert d.secret_properties == frozenset({"API key", "Webhook secret"})

    jwt = load_definition((DEFINITIONS / "extended" / "jwt_auth.json").read_bytes())
    assert isinstance(jwt.auth, JwtAuth)
    assert (jwt.auth.algorithm, jwt.auth.key, jwt.auth.ttl_s) == ("RS256", "$Private key$", 600)
    assert thaw(jwt.auth.claims) == {"application_id": "$Application ID$"}


# -- the broken corpus ----------------------------------------------------------------------------


def test_the_corpus_has_at_least_25_distinct_errors() -> None:
    errors = {(e["pointer"], e["message"]) for e in BROKEN.values() if e["severity"] == "error"}
    assert len(errors) >= 25


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_definition_reports_the_expected_problem(name: str) -> None:
    expected = BROKEN[name]
    data = (DEFINITIONS / "broken" / name).read_bytes()
    problems = check_definition(data)
    assert any(
        p.pointer == expected["pointer"]
        and expected["message"] in p.message
        and p.severity == expected["severity"]
        for p in problems
    ), problems
    if expected["severity"] == "error":
        with pytest.raises(DefinitionError) as caught:
            load_definition(data)
        assert caught.value.problems == problems
        assert expected["message"] in str(caught.value) or len(caught.value.errors) > 1
    else:
        assert not [p for p in problems if p.severity == "error"]
        assert load_definition(data).warnings == problems


# -- reading the input ----------------------------------------------------------------------------


def test_text_bytes_bom_and_mappings_load_alike() -> None:
    text = json.dumps(template())
    expected = load_definition(text)
    assert load_definition(text.encode()) == expected
    assert load_definition(b"\xef\xbb\xbf" + text.encode()) == expected
    assert load_definition(template()) == expected
    source = expected.source
    assert isinstance(source, MappingProxyType)
    assert load_definition(source) == expected  # a frozen tree is a mapping too


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        ("", "not valid JSON"),
        ("{'id': 1}", "not valid JSON"),
        ('{"a": Infinity}', "Infinity is not a JSON value"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ("1" * 5000, "number too large"),
        (" " * (1 << 20) + "{}", "larger than"),
        ("42", "must be a JSON object, not a number"),
        ('"text"', "must be a JSON object, not a string"),
        ("null", "must be a JSON object"),
        (["a"], "must be a JSON object, not a list"),
    ],
)
def test_unreadable_input_is_one_problem_at_the_root(data: object, fragment: str) -> None:
    problems = check_definition(data)  # type: ignore[arg-type]
    assert len(problems) == 1
    assert problems[0].pointer == ""
    assert fragment in problems[0].message
    with pytest.raises(DefinitionError):
        load_definition(data)  # type: ignore[arg-type]


def test_values_that_are_not_json_are_reported_where_they_are() -> None:
    doc: dict[Any, Any] = template()
    doc["API"]["SendMessage"]["request_parameters"]["n"] = math.nan
    doc["API"]["SendMessage"]["request_parameters"]["s"] = {1, 2}
    doc["API"]["SendMessage"]["request_parameters"][3] = "three"
    doc["API"]["SendMessage"]["request_parameters"]["big"] = 10**400
    at = "/API/SendMessage/request_parameters"
    assert problems_of(doc) == [
        f"error {at}: an object key must be a string",
        f"error {at}/big: this number is too large",
        f"error {at}/n: NaN and Infinity are not JSON numbers",
        f"error {at}/s: a set is not a JSON value",
    ]


def test_a_cyclic_mapping_is_cut_at_the_depth_limit() -> None:
    doc = template()
    loop: dict[str, Any] = {}
    loop["again"] = loop
    doc["API"]["SendMessage"]["request_parameters"]["loop"] = loop
    problems = check_definition(doc)
    assert len(problems) == 1
    assert "nested more than 64 levels" in problems[0].message
    assert problems[0].pointer.startswith("/API/SendMessage/request_parameters/loop/again/again")


def test_semantic_checks_run_despite_structural_errors_elsewhere() -> None:
    doc = template()
    del doc["name"]
    doc["class"] = "voice"
    doc["auth"]["token"] = "$API Key$"
    doc["Webhook"][2]["request_parameters"]["params"].pop("from")
    doc["API"]["SendFile"]["request_method"] = 7
    assert problems_of(doc) == [
        'error /: the definition is missing the required key "name"',
        "error /API/SendFile/request_method: request_method must be "
        '"GET", "POST", "PUT", "PATCH" or "DELETE", not the number 7',
        'error /Webhook/2/request_parameters: a model of event_type "message" must capture '
        "$from$, $to$ and $content$ (or $text$); this one does not capture $from$ "
        "(an optional $x?$ capture does not count)",
        "error /auth/token: unknown placeholder $API Key$: only properties can be used in auth, "
        'and there is no "API Key" (did you mean $API key$?)',
        'error /class: class must be "sms": msgbridge integrates SMS/MMS messaging providers '
        'only ("voice" given)',
        'warning /properties/0: property "API key" is declared but never used (no $API key$ in '
        "the file)",
    ]


def test_errors_and_warnings_come_together_and_apart() -> None:
    doc = template()
    doc["properties"].append("Unused")
    doc["id"] = ""
    with pytest.raises(DefinitionError) as caught:
        load_definition(doc)
    assert [p.pointer for p in caught.value.errors] == ["/id"]
    assert [p.pointer for p in caught.value.warnings] == ["/properties/1"]
    doc["id"] = "fine"
    assert [str(p) for p in load_definition(doc).warnings] == [
        '/properties/1: property "Unused" is declared but never used (no $Unused$ in the file)'
    ]


def test_pointers_escape_tilde_and_slash() -> None:
    doc = template()
    doc["API"]["SendMessage"]["request_parameters"] = {"a/b": "$nope$", "c~d": "$nope$"}
    assert [p.pointer for p in check_definition(doc) if p.severity == "error"] == [
        "/API/SendMessage/request_parameters/a~1b",
        "/API/SendMessage/request_parameters/c~0d",
    ]


# -- placeholders by place (docs/format.md, "Placeholders") ---------------------------------------


def _with_parameter(where: str, value: str) -> dict[str, Any]:
    doc = template()
    doc["Subscribe"] = {"request_method": "POST", "request_url": "https://x.example/s"}
    doc["Unsubscribe"] = {"request_method": "POST", "request_url": "https://x.example/u"}
    target = {
        "SendMessage": doc["API"]["SendMessage"],
        "SendFile": doc["API"]["SendFile"],
        "Subscribe": doc["Subscribe"],
        "Unsubscribe": doc["Unsubscribe"],
    }[where]
    target.setdefault("request_parameters", {})["probe"] = value
    return doc


@pytest.mark.parametrize(
    ("where", "allowed", "refused"),
    [
        (
            "SendMessage",
            "from to content extension domain orgid webhook_url gateway_id",
            "text url messageid event_key number status error media_type filename",
        ),
        (
            "SendFile",
            "from to content text extension domain orgid webhook_url gateway_id media_type "
            "filename",
            "url messageid event_key number status error",
        ),
        (
            "Subscribe",
            "orgid webhook_url number",
            "from to content text extension domain messageid event_key gateway_id",
        ),
        ("Unsubscribe", "webhook_url number", "from to content orgid messageid event_key"),
    ],
)
def test_each_request_offers_the_variables_of_the_spec_table(
    where: str, allowed: str, refused: str
) -> None:
    for name in allowed.split():
        assert problems_of(_with_parameter(where, f"${name}$")) == [], name
    for name in refused.split():
        problems = problems_of(_with_parameter(where, f"x ${name}$"))
        assert len(problems) == 1, name
        assert f"${name}$ is not available in {where}" in problems[0], name


def test_response_maps_capture_messageid_status_and_error() -> None:
    doc = template()
    doc["API"]["SendMessage"]["response_map"] = {
        "id": "$messageid$",
        "state": "$status$",
        "reason": "$error$",
    }
    assert check_definition(doc) == ()
    doc["API"]["SendMessage"]["response_map"]["who"] = "$to$"
    assert problems_of(doc) == [
        "error /API/SendMessage/response_map/who: $to$ is not available in a response_map; "
        "it can be used in SendMessage, SendFile, SendTyping, MarkRead and webhook models"
    ]


def test_webhook_models_capture_their_variables_and_optional_ones() -> None:
    doc = template()
    doc["Webhook"][1]["request_parameters"]["params"]["text"] = "$text?$"
    doc["Webhook"][0]["request_parameters"]["params"]["state"] = "delivery.$status$"
    doc["Webhook"][0]["request_parameters"]["params"]["why"] = "$error?$"
    assert check_definition(doc) == ()
    doc["Webhook"][0]["request_parameters"]["params"]["who"] = "$orgid$"
    assert problems_of(doc) == [
        "error /Webhook/0/request_parameters/params/who: $orgid$ is not available in a webhook "
        "model; it can be used in SendMessage, SendFile, SendTyping, MarkRead and Subscribe"
    ]


def test_properties_are_allowed_everywhere_and_literal_dollars_are_fine() -> None:
    doc = template()
    doc["properties"].append("Account")
    doc["API"]["SendMessage"]["request_url"] = "https://api.example.com/$Account$/messages"
    doc["API"]["SendMessage"]["response_map"]["account"] = "$Account$"
    doc["Webhook"][2]["request_parameters"]["account"] = "$Account$"
    doc["API"]["SendFile"]["request_parameters"]["price"] = "$$5 $$"
    assert check_definition(doc) == ()


def test_every_unknown_placeholder_of_a_string_is_reported() -> None:
    doc = template()
    doc["API"]["SendMessage"]["request_url"] = "https://api.example.com/$a$/$b$"
    messages = [p.message for p in check_definition(doc)]
    assert [m.split(":")[0] for m in messages] == [
        "unknown placeholder $a$",
        "unknown placeholder $b$",
    ]


# -- the other semantic checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.example.com/m", None),
        ("HTTP://api.example.com/m", None),
        ("https://$Server$/ns-api/v2/subscriptions", None),
        ("https://$Server$:8443", None),
        ("https://api.$Server$.example.com/m?x=$Server$", None),
        ("http://localhost", None),
        ("mailto:someone@example.com", "must be an http or https URL"),
        ("//api.example.com/m", "must be an http or https URL"),
        ("api.example.com/m", "must be an http or https URL"),
        ("file:///etc/passwd", 'uses the "file" scheme'),
        ("$Server$/m", "starts with the placeholder $Server$"),
        ("http$Server$://x", "must be an http or https URL"),
        ("https://", "has no host"),
        ("https://?q=1", "has no host"),
    ],
)
def test_request_urls_must_be_http_or_https(url: str, problem: str | None) -> None:
    doc = template()
    doc["properties"].append("Server")
    doc["API"]["SendMessage"]["request_url"] = url
    doc["API"]["SendFile"]["request_url"] = "https://api.example.com/$Server$"
    messages = [p.message for p in check_definition(doc)]
    if problem is None:
        assert messages == []
    else:
        assert len(messages) == 1 and problem in messages[0]


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("text/json", True),
        ("Application/X-WWW-Form-Urlencoded", True),
        ("multipart/form-data", True),
        ("text/plain", False),
        ("application/xml", False),
        ("json", False),
    ],
)
def test_request_content_types(content_type: str, ok: bool) -> None:
    doc = template()
    doc["API"]["SendMessage"]["request_content_type"] = content_type
    problems = check_definition(doc)
    assert (problems == ()) is ok


def test_form_and_query_parameters_must_be_objects_but_json_may_be_a_list() -> None:
    doc = template()
    doc["API"]["SendMessage"]["request_parameters"] = [{"to": "$to$"}, "$content$", "$from$"]
    assert check_definition(doc) == ()
    doc["API"]["SendMessage"]["request_content_type"] = "multipart/form-data"
    assert problems_of(doc) == [
        "error /API/SendMessage/request_parameters: a multipart/form-data body is made of named "
        "fields, so request_parameters must be an object"
    ]


def test_a_send_without_response_map_is_warned_about() -> None:
    doc = template()
    del doc["API"]["SendFile"]["response_map"]
    assert problems_of(doc) == [
        "warning /API/SendFile: SendFile has no response_map, so the provider's message id is "
        "never captured and delivery reports cannot be matched to the message"
    ]


def test_a_bare_messageid_response_map_is_allowed() -> None:
    doc = template()
    doc["API"]["SendMessage"]["response_map"] = "$messageid$"
    doc["API"]["SendFile"]["response_map"] = [{"id": "$messageid$"}]
    assert check_definition(doc) == ()


@pytest.mark.parametrize(
    ("event_type", "params", "missing"),
    [
        ("message", {"from": "$from$", "to": "$to$", "text": "$text$"}, None),
        ("message", {"from": "$from$", "to": "$to$"}, "$content$ (or $text$)"),
        ("message", {"from": "$from$", "body": "$content$"}, "$to$"),
        ("message", {"x": "$from$-$to$", "c": ["$content$"]}, None),
        ("mms", {"from": "$from$", "to": "$to$", "MediaUrl*": "$url$"}, None),
        ("mms", {"from": "$from$", "to": "$to$", "url": "$url?$"}, "$url$"),
        ("mms", {"from": "$from$", "to": "$to$", "content": "$content$"}, "$url$"),
        ("messageSent", {"id": "$messageid$"}, None),
        ("messageFailed", {"id": "$messageid$", "reason": "$error$"}, None),
        ("messageFailed", {"reason": "$error$"}, "$messageid$"),
        ("messageDelivered", {"status": "$status$"}, "$messageid$"),
    ],
)
def test_webhook_models_must_produce_their_event(
    event_type: str, params: dict[str, Any], missing: str | None
) -> None:
    doc = template()
    doc["Webhook"] = [
        {
            "event_key": "k",
            "event_type": event_type,
            "request_method": "POST",
            "request_parameters": params,
        }
    ]
    messages = [p.message for p in check_definition(doc)]
    if missing is None:
        assert messages == []
    else:
        assert len(messages) == 1
        assert f"this one does not capture {missing} (" in messages[0]


def test_same_constraints_warn_also_with_the_same_event_key() -> None:
    doc = template()
    base = doc["Webhook"][2]
    # the same literal constraints reached through $event_key$ and through a literal
    twin = copy.deepcopy(base)
    twin["event_key"] = "other"
    twin["request_parameters"]["method"] = "message"
    doc["Webhook"].append(twin)
    assert problems_of(doc) == [
        "warning /Webhook/3: this model has the same constraints as /Webhook/2: a payload both "
        "match goes to the one with more captures, then to the earlier one in the file"
    ]
    # still a warning, never a refusal (docs/format.md, "Choosing a model")
    twin["event_key"] = "message"
    assert [p.severity for p in check_definition(doc)] == ["warning"]
    # a different method, each pointer or literal makes them different
    for change in (
        {"request_method": "GET"},
        {"each": "/items"},
        {
            "request_parameters": {
                "method": "message",
                "params": {"from": "$from$", "to": "$to$", "content": "$content$", "kind": "sms"},
            }
        },
    ):
        assert check_definition({**doc, "Webhook": [base, {**twin, **change}]}) == ()


def test_literal_numbers_and_booleans_constrain_as_text() -> None:
    doc = template()
    doc["Webhook"] = [
        {
            "event_key": str(i),
            "event_type": "messageDelivered",
            "request_method": "POST",
            "request_parameters": {"ok": value, "id": "$messageid$"},
        }
        for i, value in enumerate([1, "1", True, "true"])
    ]
    assert [(p.pointer, p.severity) for p in check_definition(doc)] == [
        ("/Webhook/1", "warning"),
        ("/Webhook/3", "warning"),
    ]


def test_property_names_must_work_as_placeholders() -> None:
    doc = template()
    doc["properties"] = ["API key", {"name": "Ready?"}, "a$b", "two\nlines"]
    assert [(p.pointer, p.message.split(" ")[0]) for p in check_definition(doc)] == [
        ("/properties/1/name", "property"),
        ("/properties/1/name", "property"),
        ("/properties/2", "property"),
        ("/properties/2", "property"),
        ("/properties/3", "a"),
        ("/properties/3", "property"),
    ]


def test_each_and_header_names_and_webhook_auth_kinds() -> None:
    doc = template()
    doc["properties"].append("Secret")
    for webhook_auth in (
        {"type": "twilio", "auth_token": "$Secret$", "header": "X-Signature"},
        {"type": "ed25519", "public_key": "$Secret$", "signature_header": "S", "tolerance_s": 300},
        {"type": "jwt", "secret": "$Secret$", "payload_hash": True},
        {"type": "basic", "username": "u", "password": "$Secret$"},
        {
            "type": "hmac",
            "header": "X-S",
            "secret": "$Secret$",
            "signed": "url+nonce",
            "nonce_header": "X-Nonce",
        },
    ):
        assert check_definition({**doc, "WebhookAuth": webhook_auth}) == (), webhook_auth
    assert problems_of(
        {**doc, "WebhookAuth": {"type": "basic", "username": "$User$", "password": "$Secret$"}}
    ) == [
        "error /WebhookAuth/username: unknown placeholder $User$: only properties can be used in "
        'WebhookAuth, and there is no "User"'
    ]


# -- nothing but DefinitionError, whatever the input ----------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)

_KEYS = [
    "id", "name", "class", "properties", "auth", "OAuth2", "API", "SendMessage", "SendFile",
    "Webhook", "Subscribe", "Unsubscribe", "WebhookAuth", "number_format", "request_method",
    "request_url", "request_parameters", "request_headers", "response_map", "event_key",
    "event_type", "each", "type", "token", "headers", "flow_type", "default",
]  # fmt: skip
_TEXTS = ["$from$", "$to$", "$x$", "$", "$$", "$text?$", "https://$h$/", "sms", "POST", "GET",
          "Basic", "Bearer", "Header", "JWT", "message", "mms", "/r", "hmac", "0"]  # fmt: skip

definition_like = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(_TEXTS) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=40,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_paths(item, (*path, i)))
    return found


def _only_definition_errors(data: object) -> None:
    problems = check_definition(data)  # type: ignore[arg-type]
    assert all(isinstance(p, Problem) for p in problems)
    assert all(p.pointer == "" or p.pointer.startswith("/") for p in problems)
    assert all(p.message and p.severity in ("error", "warning") for p in problems)
    try:
        definition = load_definition(data)  # type: ignore[arg-type]
    except DefinitionError as exc:
        assert exc.problems == problems
        assert exc.errors
    else:
        assert isinstance(definition, Definition)
        assert definition.warnings == problems


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(json_values)
def test_random_json_values_only_ever_raise_definition_error(value: Any) -> None:
    _only_definition_errors(value)
    try:
        text = json.dumps(value)
    except ValueError:
        return
    _only_definition_errors(text)


@_FUZZ
@given(definition_like)
def test_random_definition_shaped_json_only_ever_raises_definition_error(value: Any) -> None:
    _only_definition_errors(value)


@_FUZZ
@given(st.data())
def test_the_template_with_any_part_replaced_only_ever_raises_definition_error(
    data: st.DataObject,
) -> None:
    doc = template()
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    target = doc
    for token in path[:-1]:
        target = target[token]
    target[path[-1]] = data.draw(definition_like | json_values)
    _only_definition_errors(doc)
    _only_definition_errors(json.dumps(doc, allow_nan=True).encode())


@_FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200).map(bytes))
def test_random_text_and_bytes_only_ever_raise_definition_error(data: str | bytes) -> None:
    _only_definition_errors(data)


# -- (ext) captures chained through Subscribe and Unsubscribe lists -------------------------------


def _chained(first_map: object, later_url: str) -> dict[str, Any]:
    doc = template()
    doc["Subscribe"] = [
        {
            "request_method": "GET",
            "request_url": "https://api.example.com/numbers",
            "request_parameters": {"number": "$number$"},
            "response_map": first_map,
        },
        {"request_method": "POST", "request_url": later_url},
    ]
    return doc


def test_a_subscribe_capture_is_a_variable_of_the_requests_after_it() -> None:
    doc = _chained(
        {"items": [{"id": "$number_id$"}], "why": "$error$"}, "https://a.example/$number_id$"
    )
    assert check_definition(doc) == ()
    loaded = load_definition(doc)
    assert [s.pointer for s in loaded.subscribe] == ["/Subscribe/0", "/Subscribe/1"]


def test_a_subscribe_capture_is_not_a_variable_before_it_but_unsubscribe_may_use_it() -> None:
    # (ext) docs/format.md, "Values Subscribe keeps": Unsubscribe has what Subscribe captured
    doc = _chained({"items": [{"id": "$number_id$"}]}, "https://a.example/x")
    doc["Subscribe"][0]["request_url"] = "https://api.example.com/$number_id$"
    doc["Unsubscribe"] = {
        "request_method": "DELETE",
        "request_url": "https://a.example/$number_id$",
    }
    assert problems_of(doc) == [
        "error /Subscribe/0/request_url: unknown placeholder $number_id$: not a property of this "
        "file, nor a variable of Subscribe (did you mean $number$?)",
    ]


def test_a_subscribe_capture_cannot_hide_a_property_or_a_variable() -> None:
    doc = _chained({"a": "$API key$", "b": "$webhook_url$"}, "https://a.example/")
    assert "API key" in doc["properties"]
    assert problems_of(doc) == [
        'error /Subscribe/0/response_map/a: $API key$ would hide the property "API key"; a capture '
        "in a Subscribe or Unsubscribe response_map names a new variable for the requests after "
        "it, so give it a name of its own",
        "error /Subscribe/0/response_map/b: $webhook_url$ would hide the gateway's variable of "
        "that name; a capture in a Subscribe or Unsubscribe response_map names a new variable "
        "for the requests after it, so give it a name of its own",
    ]


def test_absent_keys_load_and_a_bad_pointer_is_reported_where_it_is() -> None:
    doc = template()
    doc["Webhook"][2]["absent"] = ["/status", "/data/kind"]
    assert check_definition(doc) == ()
    assert load_definition(doc).webhooks[2].absent == ("/status", "/data/kind")
    doc["Webhook"][2]["absent"] = ["status"]
    (problem,) = check_definition(doc)
    assert problem.pointer == "/Webhook/2/absent/0"
    assert "JSON Pointer" in problem.message


def test_request_headers_of_a_model_load_and_count_as_its_captures() -> None:
    doc = template()
    delivered = doc["Webhook"][0]
    del delivered["request_parameters"]["params"]["messageid"]
    assert problems_of(doc) == [
        'error /Webhook/0/request_parameters: a model of event_type "messageDelivered" must '
        "capture $messageid$; this one does not capture $messageid$ (an optional $x?$ capture "
        "does not count)"
    ]
    delivered["request_headers"] = {"X-Message-Id": "$messageid$"}
    assert check_definition(doc) == ()
    loaded = load_definition(doc).webhooks[0]
    assert dict(loaded.headers) == {"X-Message-Id": "$messageid$"}


def test_request_headers_problems_are_reported_where_they_are() -> None:
    doc = template()
    doc["Webhook"][2]["request_headers"] = {
        "X Bad": "x",
        "X-Id": "$mesageid$",
        "x-id": "$messageid$",
        "X-Num": 5,
    }
    assert problems_of(doc) == [
        'error /Webhook/2/request_headers/X Bad: "X Bad" is not a valid key: an HTTP header name '
        "is made of letters, digits and !#$%&'*+.^_`|~- only",
        "error /Webhook/2/request_headers/X-Id: unknown placeholder $mesageid$: not a property "
        "of this file, nor a variable of a webhook model (did you mean $messageid$?)",
        "error /Webhook/2/request_headers/X-Num: X-Num must be a string, not the number 5",
        'error /Webhook/2/request_headers/x-id: "x-id" and "X-Id" name the same header (header '
        "names ignore case); keep one",
    ]


def test_models_that_differ_only_in_a_header_literal_are_not_equal_constraints() -> None:
    doc = template()
    twin = copy.deepcopy(doc["Webhook"][2])
    twin["event_key"] = "message-2"
    twin["request_parameters"]["method"] = "message"
    doc["Webhook"].append(twin)
    assert [p.severity for p in check_definition(doc)] == ["warning"]
    twin["request_headers"] = {"X-Kind": "second"}
    assert check_definition(doc) == ()


def test_a_broken_properties_list_does_not_make_every_property_placeholder_unknown() -> None:
    doc = template()
    # only the list's own error, nothing built on it (docs/format.md, "Checking a file")
    doc["properties"] = "API key"
    assert problems_of(doc) == [
        'error /properties: properties must be a list, not the string "API key"'
    ]


def test_a_subscribe_response_map_may_capture_the_response_map_variables() -> None:
    doc = template()
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": "https://api.example.com/hooks",
        "request_parameters": {"url": "$webhook_url$"},
        "response_map": {"data": {"id": "$messageid$", "state": "$status$"}},
    }
    # messageid and status are response_map captures (docs/format.md, "Subscribe and Unsubscribe")
    assert check_definition(doc) == ()


def test_logo_must_be_a_url() -> None:
    doc = template()
    doc["logo"] = "not a url"
    assert problems_of(doc) == [
        "error /logo: logo must be an http or https URL, starting with https:// or http://"
    ]


# -- hostile definitions cost linear time to check -----------------------------------------------


def test_a_json_pointer_of_many_slashes_is_checked_in_linear_time() -> None:
    # The schema's pointer pattern had nested quantifiers: 22 slashes and a "~" took 0.3 s, and
    # each slash more doubled it. The check runs in a child process so that a regression fails
    # after a generous guard instead of hanging the run.
    out = run_guarded(
        """
        import json
        from server.engine import check_definition
        with open("tests/fixtures/definitions/seed/complete_example.json") as file:
            doc = json.load(file)
        doc["Webhook"][2]["each"] = "/" * 100_000 + "~"
        doc["Webhook"][2]["absent"] = ["/" * 100_000 + "~2", "/ok/~0~1/" * 10_000]
        for problem in check_definition(doc):
            print(problem.pointer)
        """
    )
    # each: not a pointer, and (ext) longer than 512 characters ("Nested lists")
    assert out.split() == ["/Webhook/2/absent/0", "/Webhook/2/each", "/Webhook/2/each"]


def test_repeated_items_are_found_in_linear_time_and_reported_briefly() -> None:
    # jsonschema compares every pair of items that cannot be sorted: 8,000 objects took a minute.
    out = run_guarded(
        """
        import json
        from server.engine import check_definition
        with open("tests/fixtures/definitions/seed/complete_example.json") as file:
            doc = json.load(file)
        for absent in ([{"a": i} for i in range(30_000)], [f"/k{i}" for i in range(30_000)]):
            doc["Webhook"][2]["absent"] = absent + absent[-1:]
            problems = [p for p in check_definition(doc) if p.pointer == "/Webhook/2/absent"]
            print(json.dumps([p.message for p in problems]))
        """
    )
    for line in out.splitlines():
        assert json.loads(line) == ["absent must not hold the same item twice"]


def _too_many(kind: str) -> tuple[dict[str, Any], str, str]:
    """A definition one past a bound; the pointer and words of its problem."""
    doc = template()
    model = doc["Webhook"][2]
    if kind == "models":
        doc["Webhook"] = [dict(model, event_key=f"m{i}") for i in range(101)]
        return doc, "/Webhook/100", "at most 100 webhook models; this one has 101"
    if kind == "properties":
        doc["properties"] = [f"p{i}" for i in range(101)]
        return doc, "/properties/100", "at most 100 properties; this one has 101"
    if kind == "placeholders":
        doc["API"]["SendMessage"]["request_parameters"]["more"] = "$to$" * 998
        return doc, "/API/SendMessage/request_parameters/more", "at most 1000 placeholders"
    if kind == "pattern values":
        model["request_parameters"]["params"]["list"] = ["x", *range(1000)]
        # the 1,001st value: the three models hold 18 before the list
        return doc, "/Webhook/2/request_parameters/params/list/982", "at most 1000 values"
    assert kind == "star keys"
    model["request_parameters"]["params"].update({f"M{i}*": "$url$" for i in range(33)})
    return doc, "/Webhook/2/request_parameters/params/M32*", 'at most 32 keys ending in "*"'


@pytest.mark.parametrize(
    "kind", ["models", "properties", "placeholders", "pattern values", "star keys"]
)
def test_a_definition_past_a_bound_is_refused_at_the_place_past_it(kind: str) -> None:
    doc, at, words = _too_many(kind)
    problems = [p for p in check_definition(doc) if words in p.message]
    assert [p.pointer for p in problems] == [at]
    with pytest.raises(DefinitionError):
        load_definition(doc)


def test_the_bounds_leave_room_for_every_shipped_definition() -> None:
    for path in sorted((ROOT / "integrations").glob("*.json")):
        if path.name != "schema.json":
            load_definition(path.read_bytes())


def test_thousands_of_unknown_placeholders_and_properties_are_checked_in_linear_time() -> None:
    # A "did you mean" was computed for each unknown placeholder against every property: 2,000
    # of each took 12 s, and the cost grew with the product.
    out = run_guarded(
        """
        import json
        from server.engine import check_definition
        with open("tests/fixtures/definitions/seed/complete_example.json") as file:
            doc = json.load(file)
        doc["properties"] = [f"prop{i:05d}" for i in range(20_000)]
        unknown = "".join(f"$qrop{i:05d}$" for i in range(20_000))
        doc["API"]["SendMessage"]["request_parameters"]["x"] = unknown
        for problem in check_definition(doc):
            print(problem.pointer)
        """
    )
    assert out.split() == ["/API/SendMessage/request_parameters/x", "/properties/100"]


def test_a_key_longer_than_256_characters_is_reported_at_its_object() -> None:
    # Every pointer below a key repeats it: a 500 KB key over 40,000 values took seconds to check.
    doc = template()
    params = doc["API"]["SendMessage"]["request_parameters"]
    params["k" * 256] = "fine"
    assert check_definition(doc) == ()
    params["k" * 257] = {f"a{i}": "x" for i in range(10)}
    (problem,) = check_definition(doc)
    assert problem.pointer == "/API/SendMessage/request_parameters"
    assert problem.message == 'the key "kkkkkkkkkkkkkkkkkkkk…" is longer than 256 characters'
