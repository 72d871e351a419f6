"""(ext) Per-installation variants (docs/format.md, "Variants"): loading, choosing, and what
``msgbridge check`` says about them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from client.cli import main
from server.engine import check_definition, load_definition, render_request
from server.engine._variants import MAX_COMBINATIONS, merge_patch

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = sorted(p for p in (ROOT / "integrations").glob("*.json") if p.name != "schema.json")

BASE: dict[str, Any] = {
    "id": "acme",
    "name": "Acme",
    "class": "sms",
    "properties": [
        "API key",
        {"name": "Auth", "options": ["bearer", "basic"]},
        {"name": "User", "secret": False, "required": False},
    ],
    "auth": {"type": "Bearer", "token": "$API key$"},
    "API": {
        "SendMessage": {
            "request_method": "POST",
            "request_url": "https://api.example.com/messages",
            "request_parameters": {"from": "$from$", "to": "$to$", "text": "$content$"},
            "response_map": {"id": "$messageid$"},
        }
    },
    "variants": {
        "Auth": {
            "basic": {
                "auth": {
                    "type": "Basic",
                    "token": None,
                    "username": "$User$",
                    "password": "$API key$",
                }
            }
        }
    },
}
VARS = {"from": "+15550001111", "to": "+15557654321", "content": "hi", "API key": "k"}


def doc(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(BASE)
    result.update(changes)
    return result


def messages(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p.severity, p.pointer, p.message) for p in check_definition(document)]


# -- merge patch (RFC 7386) -----------------------------------------------------------------------


def test_merge_patch_merges_objects_removes_nulls_and_replaces_the_rest() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x"}
    patch = {"a": {"b": None, "z": 3}, "d": [3], "f": {"g": None}}
    assert merge_patch(target, patch) == {"a": {"c": 2, "z": 3}, "d": [3], "e": "x", "f": {}}
    assert target == {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x"}  # never changed in place


# -- loading and choosing -------------------------------------------------------------------------


def test_each_choice_renders_its_own_request() -> None:
    definition = load_definition(doc())
    assert definition.warnings == ()
    (chooser,) = definition.choosers
    assert (chooser.name, chooser.options, chooser.default, chooser.secret) == (
        "Auth",
        ("bearer", "basic"),
        "bearer",
        False,
    )
    for values, header in (
        ({}, "Bearer k"),
        ({"Auth": "bearer"}, "Bearer k"),
        ({"Auth": "basic", "User": "u"}, "Basic dTpr"),
        ({"Auth": "not an option"}, "Bearer k"),  # an unknown value counts as the default
    ):
        chosen = definition.choose({**VARS, **values})
        request = render_request(chosen, chosen.send_message, {**VARS, **values})
        assert dict(request.headers)["Authorization"] == header, values


def test_choosing_is_a_lookup_of_what_was_built_at_load() -> None:
    definition = load_definition(doc())
    assert definition.choose({"Auth": "bearer"}) is definition  # no overlay: the file as written
    basic = definition.choose({"Auth": "basic"})
    assert basic is definition.choose({"Auth": "basic"})
    assert basic.choose({"Auth": "bearer"}) is basic  # a variant has no variants of its own


def test_the_default_option_may_be_named_and_may_have_its_own_overlay() -> None:
    document = doc()
    document["properties"][1] = {"name": "Auth", "options": ["bearer", "basic"], "default": "basic"}
    definition = load_definition(document)
    assert definition.choose({}).auth == definition.choose({"Auth": "basic"}).auth
    assert type(definition.choose({}).auth).__name__ == "BasicAuth"


def test_every_shipped_definition_is_its_own_only_choice_but_twilio_and_infobip() -> None:
    choosers = {"twilio": ["Send from"], "infobip": ["Authentication"]}
    for path in INTEGRATIONS:
        definition = load_definition(path.read_text(encoding="utf-8"))
        if path.stem in choosers:
            assert [p.name for p in definition.choosers] == choosers[path.stem]
            assert definition.choose({}) is definition
        else:
            assert definition.choosers == () and definition.choose({"x": "y"}) is definition


def test_twilio_sends_from_a_messaging_service_when_chosen() -> None:
    definition = load_definition((ROOT / "integrations" / "twilio.json").read_text())
    values = {**VARS, "Account SID": "AC1", "Auth Token": "t", "webhook_url": "https://gw/x"}
    chosen = definition.choose({"Send from": "messaging_service"})
    for template in (chosen.send_message, chosen.send_file):
        assert template is not None
        request = render_request(
            chosen, template, {**values, "Messaging Service SID": "MG1", "text": "c"}
        )
        body = request.body.decode()
        assert "MessagingServiceSid=MG1" in body and "From=" not in body


# -- msgbridge check ------------------------------------------------------------------------------


def test_variants_naming_an_unknown_property_or_option_are_errors() -> None:
    document = doc()
    document["variants"] = {
        "Nope": {"x": {}},
        "User": {"x": {}},
        "Auth": {"oauth": {}},
    }
    assert messages(document) == [
        ("error", "/variants/Auth/oauth", '"oauth" is not an option of "Auth" ("bearer", "basic")'),
        (
            "error",
            "/variants/Nope",
            'variants are chosen by a property with options; "Nope" is not a declared property',
        ),
        (
            "error",
            "/variants/User",
            'variants are chosen by a property with options; "User" has no options',
        ),
    ]


def test_a_property_with_options_is_no_secret_and_defaults_to_an_option() -> None:
    document = doc()
    document["properties"][1] = {
        "name": "Auth",
        "options": ["bearer", "basic"],
        "secret": True,
        "default": "digest",
    }
    assert messages(document) == [
        ("error", "/properties/1/default", 'the default "digest" is not one of its options'),
        (
            "error",
            "/properties/1/secret",
            'a property with options is a choice, not a secret: leave "secret" out or false',
        ),
    ]


def test_options_are_checked_without_variants_too() -> None:
    document = doc()
    del document["variants"]
    document["properties"][1] = {"name": "Auth", "options": ["a"], "default": "b"}
    assert ("error", "/properties/1/default") in [m[:2] for m in messages(document)]


def test_options_must_be_distinct_non_empty_strings() -> None:
    document = doc()
    document["properties"][1] = {"name": "Auth", "options": []}
    assert ("error", "/properties/1/options") in [m[:2] for m in messages(document)]
    document["properties"][1] = {"name": "Auth", "options": ["a", "a"]}
    assert ("error", "/properties/1/options") in [m[:2] for m in messages(document)]


def test_each_combination_is_checked_as_if_it_were_chosen() -> None:
    document = doc()
    overlay = document["variants"]["Auth"]["basic"]
    overlay["auth"]["username"] = "$Usr$"  # a typo, only in this variant
    overlay["API"] = {"SendMessage": {"request_parameters": {"to": None}}}
    document["properties"].append({"name": "Route", "options": ["a", "b"]})
    document["variants"]["Route"] = {
        "b": {"API": {"SendMessage": {"request_method": "FETCH"}}},
    }
    assert messages(document) == [
        # the typo leaves "User" unused: a warning about the file
        (
            "warning",
            "/properties/2/name",
            'property "User" is declared but never used (no $User$ in the file)',
        ),
        # each problem at the overlay that made it, once, for the fewest choices that make it
        (
            "error",
            "/variants/Auth/basic/auth/username",
            'when "Auth" is "basic": unknown placeholder $Usr$: only properties can be used in '
            'auth, and there is no "Usr" (did you mean $User$?)',
        ),
        (
            "error",
            "/variants/Route/b/API/SendMessage/request_method",
            'when "Route" is "b": request_method must be "GET", "POST", "PUT", "PATCH" or '
            '"DELETE", not "FETCH"',
        ),
    ]


def test_a_problem_only_a_combination_has_names_every_choice() -> None:
    document = doc()
    document["properties"].append({"name": "Route", "options": ["a", "b"]})
    # each overlay alone is fine; together they make a GET whose parameters are a list
    document["variants"]["Auth"]["basic"]["API"] = {"SendMessage": {"request_method": "GET"}}
    document["variants"]["Route"] = {
        "b": {"API": {"SendMessage": {"request_parameters": ["$to$", "$content$"]}}}
    }
    found = messages(document)
    assert [m[1] for m in found] == ["/variants/Route/b/API/SendMessage/request_parameters"]
    assert found[0][2].startswith('when "Auth" is "basic", "Route" is "b": ')


def test_a_problem_the_file_has_is_not_repeated_for_each_variant() -> None:
    document = doc()
    document["API"]["SendMessage"]["request_url"] = "ftp://api.example.com/messages"
    found = [m for m in messages(document) if m[1] == "/API/SendMessage/request_url"]
    assert len(found) == 1 and not found[0][2].startswith("when")


def test_the_number_of_combinations_is_bounded() -> None:
    document = doc()
    options = [str(i) for i in range(MAX_COMBINATIONS + 1)]
    document["properties"][1] = {"name": "Auth", "options": options}
    document["variants"] = {"Auth": {"1": {}}}
    assert [m for m in messages(document) if m[0] == "error"] == [
        (
            "error",
            "/variants",
            f"the variants' options make {MAX_COMBINATIONS + 1} combinations; at most "
            f"{MAX_COMBINATIONS} are allowed (each is checked as a whole definition)",
        )
    ]


def test_an_overlay_may_change_only_the_parts_a_variant_may_differ_in() -> None:
    document = doc()
    document["variants"]["Auth"]["basic"]["Webhook"] = []
    assert [m[:2] for m in messages(document)] == [("error", "/variants/Auth/basic/Webhook")]


def test_a_property_used_only_in_a_variant_is_used() -> None:
    assert all("never used" not in m[2] for m in messages(doc()))
    document = doc()
    del document["variants"]
    assert ("warning", "/properties/1/name") in [m[:2] for m in messages(document)]


def test_check_render_uses_the_variant_its_vars_choose(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = tmp_path / "acme.json"
    definition.write_text(json.dumps(doc()))
    values = tmp_path / "vars.json"
    values.write_text(json.dumps({**VARS, "Auth": "basic", "User": "u"}))
    assert main(["check", "--render", str(definition), "--vars", str(values)]) == 0
    out = capsys.readouterr().out
    assert "Authorization: Basic " in out


def test_check_reports_a_variant_problem_at_its_overlay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    document = doc()
    document["variants"]["Auth"]["basic"]["auth"]["password"] = "$API ky$"
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(document))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f'{path}:/variants/Auth/basic/auth/password: when "Auth" is "basic": ' in out
    document = doc()
    path.write_text(json.dumps(document))
    assert main(["check", str(path)]) == 0


# -- required_when: properties some choices need -----------------------------------------------


def needs_doc() -> dict[str, Any]:
    document = doc()
    document["properties"] = [
        {"name": "API key", "required_when": {"Auth": ["bearer"]}},
        {"name": "Auth", "options": ["bearer", "basic"]},
        {"name": "User", "secret": False, "required_when": {"Auth": ["basic"]}},
    ]
    return document


def test_required_when_makes_a_property_required_only_for_its_choices() -> None:
    definition = load_definition(json.dumps(needs_doc()))
    key, auth, user = definition.properties
    assert key.required is False and user.required is False and auth.required is True
    assert dict(key.required_when) == {"Auth": ("bearer",)}
    assert definition.requires(key, {}) and not definition.requires(user, {})  # the default
    assert definition.requires(user, {"Auth": "basic"})
    assert not definition.requires(key, {"Auth": "basic"})
    # a value that is not an option counts as the default, as when choosing a variant
    assert definition.requires(key, {"Auth": "digest"})


def test_a_property_without_required_when_is_required_as_it_says() -> None:
    definition = load_definition(json.dumps(doc()))
    key, _, user = definition.properties
    assert definition.requires(key, {"Auth": "basic"}) and not definition.requires(user, {})


def test_required_when_names_choices_and_their_options() -> None:
    document = needs_doc()
    document["properties"][0]["required_when"] = {
        "Nope": ["x"],
        "User": ["x"],
        "Auth": ["bearer", "digest"],
    }
    assert messages(document) == [
        (
            "error",
            "/properties/0/required_when/Auth/1",
            '"digest" is not an option of "Auth" ("bearer", "basic")',
        ),
        (
            "error",
            "/properties/0/required_when/Nope",
            'required_when names a property with options; "Nope" is not a declared property',
        ),
        (
            "error",
            "/properties/0/required_when/User",
            'required_when names a property with options; "User" has no options',
        ),
    ]


def test_required_when_is_neither_beside_required_true_nor_on_a_choice() -> None:
    document = needs_doc()
    document["properties"][0]["required"] = True
    document["properties"][1]["required_when"] = {"Auth": ["basic"]}
    pointers = [m[:2] for m in messages(document)]
    assert ("error", "/properties/0/required") in pointers
    assert ("error", "/properties/1/required_when") in pointers


def test_required_when_is_a_map_to_non_empty_lists_of_options() -> None:
    document = needs_doc()
    document["properties"][0]["required_when"] = {"Auth": "bearer"}
    assert ("error", "/properties/0/required_when/Auth") in [m[:2] for m in messages(document)]
    document["properties"][0]["required_when"] = {"Auth": []}
    assert ("error", "/properties/0/required_when/Auth") in [m[:2] for m in messages(document)]
    document["properties"][0]["required_when"] = {}
    assert ("error", "/properties/0/required_when") in [m[:2] for m in messages(document)]


def test_infobip_takes_an_api_key_or_basic_auth() -> None:
    definition = load_definition((ROOT / "integrations" / "infobip.json").read_text())
    by_name = {p.name: p for p in definition.properties}
    assert definition.requires(by_name["API Key"], {})
    assert not definition.requires(by_name["Password"], {})
    assert definition.requires(by_name["Password"], {"Authentication": "basic"})
    assert not definition.requires(by_name["API Key"], {"Authentication": "basic"})
    assert type(definition.auth).__name__ == "HeaderAuth"
    assert type(definition.choose({"Authentication": "basic"}).auth).__name__ == "BasicAuth"
