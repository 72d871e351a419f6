"""(ext) A request's built values (docs/format.md, "Value filters"): a template over the
request's variables that its other templates read as one placeholder, so that a filter works on a
whole text (``Basic $credentials|base64$``); rendered, masked and checked."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.engine import check_definition, load_definition, render_request

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"


def document(**send: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["properties"] = [{"name": "User"}, {"name": "Password"}]
    doc.pop("auth", None)
    doc["API"]["SendMessage"].update(send)
    return doc


BASIC = {
    "build": {"credentials": "$User$:$Password$"},
    "request_headers": {"Authorization": "Basic $credentials|base64$"},
}
VALUES = {"User": "ACé1", "Password": "s3:cret", "from": "1", "to": "2", "content": "hi"}


def headers(doc: dict[str, Any], values: dict[str, Any], masked: bool = False) -> dict[str, str]:
    definition = load_definition(doc)
    template = definition.send_message
    assert template is not None
    rendered = render_request(definition, template, values, masked=masked)
    return dict(rendered.headers)


def test_a_filter_on_a_built_value_works_on_its_whole_text() -> None:
    expected = base64.b64encode("ACé1:s3:cret".encode()).decode()
    assert headers(document(**BASIC), VALUES)["Authorization"] == f"Basic {expected}"


def test_a_built_value_may_be_read_anywhere_in_the_request_and_as_a_sole_placeholder() -> None:
    doc = document(
        build={"pair": "$from$>$to$", "who": "$User|lower$"},
        request_parameters={"route": "$pair$", "from": "$from$", "to": "$to$", "u": "$who$"},
        request_url="https://api.example.com/$who$/messages",
    )
    definition = load_definition(doc)
    template = definition.send_message
    assert template is not None
    rendered = render_request(definition, template, VALUES)
    assert json.loads(rendered.body or b"") == {"route": "1>2", "from": "1", "to": "2", "u": "acé1"}
    assert rendered.url == "https://api.example.com/ac%C3%A91/messages"


def test_a_built_value_without_a_value_it_reads_has_no_value() -> None:
    doc = document(
        build={"ref": "id-$gateway_id$", "kept": "id-$gateway_id|default:none$"},
        request_parameters={
            "to": "$to$",
            "ref": "$ref$",
            "kept": "$kept$",
            "dflt": "$ref|default:x$",
        },
    )
    definition = load_definition(doc)
    template = definition.send_message
    assert template is not None
    body = json.loads(render_request(definition, template, VALUES).body or b"")
    assert body == {"to": "2", "kept": "id-none", "dflt": "x"}


def test_a_display_shows_the_mask_for_a_value_built_from_a_secret() -> None:
    assert headers(document(**BASIC), VALUES, masked=True)["Authorization"] == "Basic ••••••"


def test_a_definition_with_a_build_checks_clean() -> None:
    assert [str(p) for p in check_definition(document(**BASIC))] == []


@pytest.mark.parametrize(
    ("send", "problem"),
    [
        (
            {"build": {"User": "$Password$"}, "request_headers": {"X": "$User$"}},
            '/API/SendMessage/build/User: "User" is a property: a built value needs a name of '
            "its own",
        ),
        (
            {"build": {"to": "$User$:$Password$"}},
            '/API/SendMessage/build/to: "to" is a variable: a built value needs a name of its own',
        ),
        (
            {"build": {"credentials": "$User$:$Password$"}},
            '/API/SendMessage/build/credentials: "credentials" is built but this request never '
            "reads $credentials$",
        ),
        (
            {
                "build": {"a": "$User$", "b": "$a$:$Password$"},
                "request_headers": {"X": "$a$ $b$"},
            },
            "/API/SendMessage/build/b: unknown placeholder $a$: not a property of this file, nor "
            "a variable of SendMessage",
        ),
    ],
)
def test_a_build_is_checked(send: dict[str, Any], problem: str) -> None:
    found = [str(p) for p in check_definition(document(**send)) if p.severity == "error"]
    assert any(f.startswith(problem) for f in found), found


def test_the_token_request_builds_too() -> None:
    from test_token_auth import PROPERTIES, WECHAT

    doc = copy.deepcopy(WECHAT)
    token = doc["auth"]["request"]
    token["request_method"] = "POST"
    token["request_parameters"] = {"grant_type": "client_credentials"}
    token["request_content_type"] = "application/x-www-form-urlencoded"
    token["build"] = {"client": "$App ID$:$App secret$"}
    token["request_headers"] = {"Authorization": "Basic $client|base64$"}
    assert [p for p in check_definition(doc) if p.severity == "error"] == []
    definition = load_definition(doc)
    request = definition.auth.request  # type: ignore[union-attr]
    rendered = render_request(definition, request, PROPERTIES)
    expected = base64.b64encode(b"wx123:s3cret").decode()
    assert dict(rendered.headers)["Authorization"] == f"Basic {expected}"
