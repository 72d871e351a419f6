"""(ext) Contact names looked up (docs/format.md, "Contact names"): the ``API.LookupContact``
request — loaded, rendered, what `msgbridge check` refuses in it — and the name its answer
gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_more_event_types import template

from server.engine import (
    check_definition,
    contact_name_from_answer,
    load_definition,
    render_request,
)

LOOKUP: dict[str, Any] = {
    "request_method": "GET",
    "request_url": "https://graph.example.com/v19.0/$from$",
    "request_parameters": {"fields": "first_name,last_name", "access_token": "$API key$"},
    "response_map": {"first_name": "$first_name$", "last_name": "$last_name$"},
    "contact_name": ["$first_name$ $last_name$", "$first_name$"],
}


def with_lookup(**changes: Any) -> dict[str, Any]:
    doc = template()
    doc["API"]["LookupContact"] = {**LOOKUP, **changes}
    return doc


def errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(doc) if p.severity == "error"]


def test_the_lookup_loads_and_renders_with_the_sender_and_the_properties() -> None:
    doc = with_lookup()
    assert errors(doc) == []
    definition = load_definition(json.dumps(doc))
    lookup = definition.lookup_contact
    assert lookup is not None
    assert lookup.request.pointer == "/API/LookupContact"
    assert lookup.names == ("$first_name$ $last_name$", "$first_name$")
    rendered = render_request(
        definition, lookup.request, {"API key": "k3y", "from": "2459371", "to": "106540"}
    )
    assert rendered.method == "GET"
    assert rendered.url == (
        "https://graph.example.com/v19.0/2459371?fields=first_name%2Clast_name&access_token=k3y"
    )


def test_a_definition_without_a_lookup_has_none() -> None:
    assert load_definition(json.dumps(template())).lookup_contact is None


def test_a_single_template_is_a_list_of_one() -> None:
    doc = with_lookup(contact_name="$first_name$")
    definition = load_definition(json.dumps(doc))
    assert definition.lookup_contact is not None
    assert definition.lookup_contact.names == ("$first_name$",)


@pytest.mark.parametrize(
    ("answer", "name"),
    [
        ({"first_name": "Peter", "last_name": "Chang", "id": "2459371"}, "Peter Chang"),
        ({"first_name": "Peter", "id": "2459371"}, "Peter"),  # the next template
        ({"first_name": "  Peter ", "last_name": " "}, "Peter"),  # trimmed
        ({"id": "2459371"}, None),  # no template has its values
        ({"error": {"message": "Unsupported get request", "code": 100}}, None),
    ],
)
def test_the_first_template_whose_captures_all_have_values_gives_the_name(
    answer: dict[str, Any], name: str | None
) -> None:
    lookup = load_definition(json.dumps(with_lookup())).lookup_contact
    assert lookup is not None
    assert contact_name_from_answer(lookup, json.dumps(answer).encode(), "application/json") == name


def test_a_failed_literal_gives_no_name_and_a_long_name_is_cut() -> None:
    doc = with_lookup(response_map={"ok": True, "name": "$name$"}, contact_name="$name$")
    lookup = load_definition(json.dumps(doc)).lookup_contact
    assert lookup is not None
    refused = json.dumps({"ok": False, "name": "Peter"}).encode()
    assert contact_name_from_answer(lookup, refused, "application/json") is None
    long = json.dumps({"ok": True, "name": "P" * 5000}).encode()
    assert contact_name_from_answer(lookup, long, "application/json") == "P" * 1024
    assert contact_name_from_answer(lookup, b"not json", "text/plain") is None


@pytest.mark.parametrize(
    ("changes", "pointer", "message"),
    [
        ({"contact_name": "$nick$"}, "/API/LookupContact/contact_name", "never captures $nick$"),
        (
            {"contact_name": ["$first_name$", "Friend"]},
            "/API/LookupContact/contact_name/1",
            "names no capture",
        ),
        (
            {"contact_name": "$first_name|lower$"},
            "/API/LookupContact/contact_name",
            "names captures plainly",
        ),
        (
            {"request_url": "https://graph.example.com/$content$"},
            "/API/LookupContact/request_url",
            "$content$ is not available in LookupContact",
        ),
        (
            {"response_map": {"first_name": "$API key$"}, "contact_name": "$API key$"},
            "/API/LookupContact/response_map/first_name",
            'would hide the property "API key"',
        ),
        ({"response_rules": {"errors": []}}, "/API/LookupContact/response_rules", "unknown key"),
        ({"then": {}}, "/API/LookupContact/then", "unknown key"),
    ],
)
def test_check_refuses(changes: dict[str, Any], pointer: str, message: str) -> None:
    found = errors(with_lookup(**changes))
    assert any(at == pointer and message in text for at, text in found), found


def test_check_refuses_a_lookup_without_contact_name() -> None:
    doc = with_lookup()
    del doc["API"]["LookupContact"]["contact_name"]
    assert any(at == "/API/LookupContact" for at, _ in errors(doc)), errors(doc)
