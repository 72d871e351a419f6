"""(ext) The Token auth's pure parts (docs/format.md, "Tokens from a request"): loading, the
`msgbridge check` rules, where each call carries the token, and reading a token request's answer."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from client.cli import main
from server.engine import (
    TokenAuth,
    check_definition,
    load_definition,
    read_token,
    render_request,
)

WECHAT: dict[str, Any] = {
    "id": "token-provider",
    "name": "Token provider",
    "class": "sms",
    "properties": [{"name": "App ID", "secret": False}, "App secret"],
    "auth": {
        "type": "Token",
        "request": {
            "request_method": "GET",
            "request_url": "https://api.example.com/cgi-bin/token",
            "request_parameters": {
                "grant_type": "client_credential",
                "appid": "$App ID$",
                "secret": "$App secret$",
            },
            "response_map": {"access_token": "$token$", "expires_in": "$expires_in$"},
        },
        "use": {"query": {"access_token": "$token$"}},
    },
    "API": {
        "SendMessage": {
            "request_method": "POST",
            "request_url": "https://api.example.com/cgi-bin/message/send",
            "request_parameters": {"touser": "$to$", "text": {"content": "$content$"}},
            "response_map": {"msgid": "$messageid$"},
        }
    },
}
PROPERTIES = {"App ID": "wx123", "App secret": "s3cret"}


def _doc(**auth: Any) -> dict[str, Any]:
    doc = copy.deepcopy(WECHAT)
    doc["auth"].update(auth)
    return doc


def _errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(doc) if p.severity == "error"]


def test_a_token_auth_loads_with_its_request_lifetime_and_use() -> None:
    definition = load_definition(_doc(ttl_s=7200))
    auth = definition.auth
    assert isinstance(auth, TokenAuth)
    assert auth.request.pointer == "/auth/request"
    assert auth.request.method == "GET"
    assert auth.ttl_s == 7200
    assert dict(auth.query) == {"access_token": "$token$"}
    assert dict(auth.headers) == {}


def test_the_token_request_renders_from_properties() -> None:
    definition = load_definition(WECHAT)
    auth = definition.auth
    assert isinstance(auth, TokenAuth)
    request = render_request(definition, auth.request, PROPERTIES)
    assert request.url == (
        "https://api.example.com/cgi-bin/token?grant_type=client_credential&appid=wx123"
        "&secret=s3cret"
    )


def test_a_call_carries_the_token_in_the_query() -> None:
    definition = load_definition(WECHAT)
    values = {**PROPERTIES, "to": "u1", "content": "hi"}
    request = render_request(definition, definition.send_message, values, bearer_token="T/1 x")
    assert request.url == "https://api.example.com/cgi-bin/message/send?access_token=T%2F1%20x"
    assert not any(name.lower() == "authorization" for name, _ in request.headers)
    shown = render_request(
        definition, definition.send_message, values, bearer_token="T/1 x", masked=True
    )
    assert "T%2F1" not in shown.url and shown.url.endswith("?access_token=••••••")


def test_a_call_carries_the_token_in_a_header_templated_with_properties() -> None:
    doc = _doc(use={"headers": {"Authorization": "Token $token$", "X-App": "$App ID$"}})
    definition = load_definition(doc)
    values = {**PROPERTIES, "to": "u1", "content": "hi"}
    request = render_request(definition, definition.send_message, values, bearer_token="tok")
    headers = dict(request.headers)
    assert headers["Authorization"] == "Token tok"
    assert headers["X-App"] == "wx123"
    assert "?" not in request.url
    shown = render_request(
        definition, definition.send_message, values, bearer_token="tok", masked=True
    )
    assert "tok" not in dict(shown.headers)["Authorization"]


def test_a_call_without_a_token_carries_none() -> None:
    definition = load_definition(WECHAT)
    values = {**PROPERTIES, "to": "u1", "content": "hi"}
    request = render_request(definition, definition.send_message, values)
    assert "access_token" not in request.url


def test_the_clean_definition_has_no_errors() -> None:
    assert _errors(WECHAT) == []


def test_an_unknown_property_in_the_token_request_is_an_error() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["auth"]["request"]["request_parameters"]["secret"] = "$App secrt$"
    assert _errors(doc) == [
        (
            "/auth/request/request_parameters/secret",
            "unknown placeholder $App secrt$: only properties can be used in the token request, "
            'and there is no "App secrt" (did you mean $App secret$?)',
        )
    ]


def test_a_send_variable_in_the_token_request_is_an_error() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["auth"]["request"]["request_headers"] = {"X-To": "$to$"}
    assert [p for p, _ in _errors(doc)] == ["/auth/request/request_headers/X-To"]


def test_a_response_map_that_never_captures_the_token_is_an_error() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["auth"]["request"]["response_map"] = {"data": {"ttl": "$expires_in$"}}
    errors = _errors(doc)
    assert [p for p, _ in errors] == ["/auth/request/response_map"]
    assert "never captures $token$" in errors[0][1]


def test_a_string_response_map_must_be_the_whole_token() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["auth"]["request"]["response_map"] = "token=$token$"
    assert [p for p, _ in _errors(doc)] == ["/auth/request/response_map"]
    doc["auth"]["request"]["response_map"] = "$token$"
    assert _errors(doc) == []


def test_an_unknown_capture_in_the_token_response_map_is_an_error() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["auth"]["request"]["response_map"] = {"access_token": "$token$", "ttl": "$lifetime$"}
    assert [p for p, _ in _errors(doc)] == ["/auth/request/response_map/ttl"]


def test_a_token_auth_without_use_is_an_error() -> None:
    doc = copy.deepcopy(WECHAT)
    del doc["auth"]["use"]
    assert [p for p, _ in _errors(doc)] == ["/auth"]
    doc["auth"]["use"] = {}
    assert [p for p, _ in _errors(doc)] == ["/auth/use"]


def test_a_use_that_never_carries_the_token_is_an_error() -> None:
    doc = _doc(use={"headers": {"X-App": "$App ID$"}})
    errors = _errors(doc)
    assert [p for p, _ in errors] == ["/auth/use"]
    assert "never carries $token$" in errors[0][1]


def test_token_is_a_variable_of_use_only() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["API"]["SendMessage"]["request_parameters"]["t"] = "$token$"
    assert [p for p, _ in _errors(doc)] == ["/API/SendMessage/request_parameters/t"]


def test_a_property_named_token_is_an_error_with_a_token_auth() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["properties"].append({"name": "token", "secret": False})
    doc["auth"]["request"]["request_parameters"]["t"] = "$token$"
    assert "/properties/2/name" in [p for p, _ in _errors(doc)]


def test_the_token_request_url_is_checked_like_any_request_url() -> None:
    doc = copy.deepcopy(WECHAT)
    doc["auth"]["request"]["request_url"] = "ftp://api.example.com/token"
    assert [p for p, _ in _errors(doc)] == ["/auth/request/request_url"]


# -- reading the answer -----------------------------------------------------------------------


def _auth(**changes: Any) -> TokenAuth:
    auth = load_definition(_doc(**changes)).auth
    assert isinstance(auth, TokenAuth)
    return auth


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_an_answer_with_a_token_and_its_lifetime() -> None:
    answer = read_token(
        _auth(), 200, _json({"access_token": "T", "expires_in": 7200}), "application/json"
    )
    assert (answer.verdict, answer.token, answer.lifetime_s) == ("token", "T", 7200.0)
    assert "T" not in repr(answer).replace("TokenAnswer", "")


def test_a_nested_token_and_ttl() -> None:
    doc = _doc()
    doc["auth"]["request"]["response_map"] = {"data": {"token": "$token$", "ttl": "$expires_in$"}}
    auth = load_definition(doc).auth
    assert isinstance(auth, TokenAuth)
    answer = read_token(auth, 201, _json({"data": {"token": "N", "ttl": "60"}}), None)
    assert (answer.verdict, answer.token, answer.lifetime_s) == ("token", "N", 60.0)


def test_without_expires_in_the_fixed_ttl_or_no_expiry() -> None:
    body = _json({"access_token": "T"})
    assert read_token(_auth(ttl_s=300), 200, body, None).lifetime_s == 300.0
    assert read_token(_auth(), 200, body, None).lifetime_s is None
    odd = _json({"access_token": "T", "expires_in": "soon"})
    assert read_token(_auth(ttl_s=300), 200, odd, None).lifetime_s == 300.0


def test_a_2xx_without_a_token_is_refused_with_its_error() -> None:
    doc = _doc()
    doc["auth"]["request"]["response_map"] = {"access_token": "$token$", "errmsg": "$error$"}
    auth = load_definition(doc).auth
    assert isinstance(auth, TokenAuth)
    body = _json({"errcode": 40013, "errmsg": "invalid appid"})
    answer = read_token(auth, 200, body, "application/json")
    assert (answer.verdict, answer.token, answer.reason) == ("refused", None, "invalid appid")
    assert read_token(auth, 200, b"not json", None).verdict == "refused"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (400, "refused"),
        (401, "refused"),
        (403, "refused"),
        (404, "refused"),
        (408, "unavailable"),
        (429, "unavailable"),
        (500, "unavailable"),
        (503, "unavailable"),
    ],
)
def test_a_failed_status(status: int, verdict: str) -> None:
    answer = read_token(_auth(), status, _json({"access_token": "T"}), None)
    assert (answer.verdict, answer.token) == (verdict, None)
    assert str(status) in answer.reason


# -- msgbridge check --render ------------------------------------------------------------------


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    return code, capsys.readouterr().out


def test_render_shows_the_token_request_and_a_send_with_the_token_masked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = tmp_path / "token.json"
    definition.write_text(json.dumps(WECHAT))
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({**PROPERTIES, "to": "u1", "content": "hi"}))

    code, out = _check(capsys, "--render", str(definition), "--vars", str(variables))
    assert code == 0
    assert out.splitlines()[0] == (
        "POST https://api.example.com/cgi-bin/message/send?access_token=••••••"
    )

    code, out = _check(
        capsys, "--render", str(definition), "--vars", str(variables), "--request", "Token"
    )
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("GET https://api.example.com/cgi-bin/token?grant_type=")
    assert "access_token" not in first and "s3cret" not in out
