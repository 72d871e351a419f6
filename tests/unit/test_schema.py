"""The JSON Schema (integrations/schema.json): what editors see, and how its errors are worded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from server.engine import check_definition
from server.engine._schema import schema, structure_problems

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "tests" / "fixtures" / "definitions"
SCHEMA_FILE = ROOT / "server" / "engine" / "schema.json"
GOOD = sorted((DEFINITIONS / "seed").glob("*.json")) + sorted(
    (DEFINITIONS / "extended").glob("*.json")
)


def template() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEFINITIONS / "seed" / "complete_example.json").read_text())
    return doc


def validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    raw = json.loads(SCHEMA_FILE.read_text())
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(raw)
    assert schema() == raw  # the engine validates with exactly the shipped file


def test_integrations_schema_is_a_link_to_the_engines_schema() -> None:
    link = ROOT / "integrations" / "schema.json"
    assert link.is_symlink()
    assert link.readlink() == Path("../server/engine/schema.json")
    assert link.resolve() == SCHEMA_FILE.resolve()


_SCHEMA_MAPS = ("properties", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_VALUES = ("items", "additionalProperties", "propertyNames", "if", "then", "else", "not")


def _property_maps(node: object, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ``properties`` map of a schema, walking only the keywords that hold schemas."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("properties"), dict):
        yield where, node["properties"]
    for keyword in _SCHEMA_MAPS:
        for key, sub in node.get(keyword, {}).items():
            yield from _property_maps(sub, f"{where}/{keyword}/{key}")
    for keyword in _SCHEMA_LISTS:
        for i, sub in enumerate(node.get(keyword, [])):
            yield from _property_maps(sub, f"{where}/{keyword}/{i}")
    for keyword in _SCHEMA_VALUES:
        yield from _property_maps(node.get(keyword), f"{where}/{keyword}")


def test_every_key_has_a_description_for_editors() -> None:
    maps = list(_property_maps(schema()))
    assert len(maps) > 15
    undocumented = [
        f"{where}/{key}"
        for where, properties in maps
        if not where.endswith("/if")  # an "if" only tests; its "then" documents
        for key, sub in properties.items()
        if not (isinstance(sub, dict) and sub.get("description"))
    ]
    assert undocumented == []
    assert schema()["description"]
    for name in ("id", "API", "Webhook", "OAuth2", "WebhookAuth", "number_format", "$schema"):
        assert name in schema()["properties"]


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_the_schema_alone_accepts_the_seed_and_the_extensions(path: Path) -> None:
    assert list(validator().iter_errors(json.loads(path.read_text()))) == []


def test_the_shipped_template_points_at_the_schema_and_validates() -> None:
    shipped = json.loads((ROOT / "integrations" / "template.json").read_text())
    assert shipped["$schema"] == "./schema.json"
    assert list(validator().iter_errors(shipped)) == []


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ((), "Webhooks"),
        (("API",), "SendSMS"),
        (("API", "SendMessage"), "request_body"),
        (("auth",), "user"),
        (("Webhook", 0), "event"),
        (("Webhook", 0), "request_parameter"),
    ],
)
def test_unknown_keys_are_refused_at_their_own_pointer(path: tuple[Any, ...], key: str) -> None:
    doc = template()
    target: Any = doc
    for token in path:
        target = target[token]
    target[key] = "x"
    expected = "".join(f"/{t}" for t in (*path, key))
    problems = structure_problems(doc)
    assert [p.pointer for p in problems] == [expected]
    assert problems[0].message.startswith(f'unknown key "{key}"')


def test_unknown_keys_suggest_the_closest_allowed_key() -> None:
    doc = template()
    doc["properites"] = doc.pop("properties")
    doc["OAuth2"] = {"client_id": "a", "client_secret": "b", "token_endpont": "https://x/t"}
    messages = {p.pointer: p.message for p in structure_problems(doc)}
    assert messages["/properites"] == 'unknown key "properites"; did you mean "properties"?'
    assert messages["/OAuth2/token_endpont"] == (
        'unknown key "token_endpont"; did you mean "token_endpoint"?'
    )
    assert messages["/OAuth2"] == 'OAuth2 is missing the required key "token_endpoint"'


def test_a_key_with_no_close_match_lists_the_allowed_keys() -> None:
    doc = template()
    doc["API"]["zzz"] = {}
    [problem] = structure_problems(doc)
    assert problem.message == (
        'unknown key "zzz"; allowed here: "SendMessage", "SendFile", "SendTyping", "MarkRead"'
    )


def test_auth_branches_check_their_own_keys() -> None:
    doc = template()
    doc["auth"] = {"type": "Basic", "username": "$API key$", "token": "$API key$"}
    assert sorted(str(p) for p in structure_problems(doc)) == [
        '/auth/token: unknown key "token"; allowed here: "type", "username", "password"',
        '/auth: auth is missing the required key "password"',
    ]
    doc["auth"] = {"type": "Header", "headers": {}}
    assert [str(p) for p in structure_problems(doc)] == ["/auth/headers: headers must not be empty"]
    doc["auth"] = {"token": "$API key$"}
    assert [str(p) for p in structure_problems(doc)] == [
        '/auth: auth is missing the required key "type"'
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"Subscribe": "https://x"},
            '/Subscribe: Subscribe must be an object or a list, not the string "https://x"',
        ),
        ({"Webhook": {}}, "/Webhook: Webhook must be a list, not an object"),
        ({"properties": [""]}, "/properties/0: item 0 of properties must not be empty"),
        ({"properties": ["x" * 65]}, "/properties/0: item 0 of properties must be at most 64 "
         "characters long"),
        ({"properties": [{"name": "A", "secret": "yes"}]},
         '/properties/0/secret: secret must be true or false, not the string "yes"'),
        ({"number_format": None},
         '/number_format: number_format must be "as_given", "e164", "e164_digits" or "national", '
         "not null"),
        ({"OAuth2": {"client_id": "a", "client_secret": "b", "token_endpoint": "https://t",
                     "flow_type": {"default": 1}}},
         '/OAuth2/flow_type/default: default must be "0" or "1", not the number 1'),
        ({"auth": {"type": "JWT", "algorithm": "HS256", "key": "k", "ttl_s": 0}},
         "/auth/ttl_s: ttl_s must be at least 1"),
        ({"WebhookAuth": {"type": "hmac", "header": "X-S", "secret": "s", "signed": "url+nonce"}},
         '/WebhookAuth: WebhookAuth is missing the required key "nonce_header"'),
        ({"WebhookAuth": {"type": "HMAC"}},
         '/WebhookAuth/type: type must be "hmac", "twilio", "ed25519", "jwt", "basic", '
         '"token" or "rsa", not "HMAC" (did you mean "hmac"?)'),
    ],
)  # fmt: skip
def test_structural_errors_are_plain_sentences(change: dict[str, Any], expected: str) -> None:
    doc = {**template(), **change}
    doc.pop("auth") if "OAuth2" in change else None
    assert [str(p) for p in structure_problems(doc)] == [expected]


def test_header_names_are_reported_at_the_header_with_escaping() -> None:
    doc = template()
    doc["API"]["SendMessage"]["request_headers"] = {"X-Ok": "a", "a~b c": "b", "X-Num": 5}
    assert sorted(str(p) for p in structure_problems(doc)) == [
        "/API/SendMessage/request_headers/X-Num: X-Num must be a string, not the number 5",
        '/API/SendMessage/request_headers/a~0b c: "a~b c" is not a valid key: an HTTP header '
        "name is made of letters, digits and !#$%&'*+.^_`|~- only",
    ]


@pytest.mark.parametrize(
    ("each", "ok"),
    [("/results", True), ("/a/0/b", True), ("/a~1b~0", True), ("/", True),
     ("results", False), ("", False), ("/a~2", False), ("/a\n", True)],
)  # fmt: skip
def test_each_must_be_a_json_pointer(each: str, ok: bool) -> None:
    doc = template()
    doc["Webhook"][2]["each"] = each
    assert (check_definition(doc) == ()) is ok


def test_the_id_pattern_has_no_trailing_newline_loophole() -> None:
    doc = template()
    doc["id"] = "YourService\n"
    [problem] = structure_problems(doc)
    assert problem.pointer == "/id"
