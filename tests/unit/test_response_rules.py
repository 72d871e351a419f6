"""(ext) response_rules (docs/format.md, "response_rules"): loading, judging an answer, the
`msgbridge check` rules against their misuse, and the error each outcome is reported as."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from server.core._provider_failures import from_error_rule, from_refusal, nothing_sent
from server.engine import (
    DefinitionError,
    ErrorMatch,
    ResponseRules,
    check_definition,
    judge_response,
    load_definition,
    map_response,
)
from server.errors import (
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderUnavailable,
    to_rpc_status,
)
from server.outbound import ProviderResponse
from server.security.secrets import MASK, SecretMask

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "integrations" / "template.json").read_text(encoding="utf-8"))
NO_SECRETS = SecretMask.of(())


def _document(rules: object, response_map: object = None, at: str = "SendMessage") -> Any:
    doc = copy.deepcopy(TEMPLATE)
    request = doc["API"][at]
    request["response_rules"] = rules
    if response_map is not None:
        request["response_map"] = response_map
    return doc


def _rules(rules: object, response_map: object = None) -> ResponseRules:
    template = load_definition(_document(rules, response_map)).send_message
    assert template.response_rules is not None
    return template.response_rules


def _judge(rules: object, body: object, status: int = 200, response_map: object = None) -> Any:
    loaded = load_definition(_document(rules, response_map)).send_message
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    captures = (
        map_response(loaded.response_map, raw, "application/json").captures
        if 200 <= status < 300
        else {}
    )
    return judge_response(loaded.response_rules, status, raw, "application/json", captures)


def _errors(doc: Any) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(doc) if p.severity == "error"]


# -- loading -----------------------------------------------------------------------------------


def test_existing_definitions_have_no_rules_and_judge_nothing() -> None:
    template = load_definition(TEMPLATE).send_message
    assert template.response_rules is None
    judged = judge_response(None, 200, b"{}", "application/json", {})
    assert judged.error is None and judged.unmet is None


def test_a_single_when_is_a_list_of_one() -> None:
    rules = _rules(
        {"errors": [{"when": {"pointer": "/code", "one_of": [21610]}, "outcome": "opted_out"}]}
    )
    (entry,) = rules.errors
    assert entry.status == () and entry.outcome == "opted_out"
    (condition,) = entry.when
    assert (condition.pointer, condition.test, condition.values) == ("/code", "one_of", (21610,))


# -- require -----------------------------------------------------------------------------------

REQUIRE_ID = {"require": [{"capture": "messageid", "not": ["", "0"]}]}


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ({"data": {}}, "it is missing"),
        ({"data": {"id": ""}}, 'found ""'),
        ({"data": {"id": "0"}}, 'found "0"'),
        ({"data": {"id": 0}}, 'found "0"'),
        ({"error": {"code": 5}}, "it is missing"),
        (b"not json", "it is missing"),
    ],
)
def test_a_required_id_that_is_missing_empty_or_zero_fails(body: object, found: str) -> None:
    judged = _judge(REQUIRE_ID, body)
    assert judged.error is None
    assert judged.unmet == f'$messageid$: expected a value other than "", "0", but {found}'


def test_a_required_id_that_is_there_passes() -> None:
    assert _judge(REQUIRE_ID, {"data": {"id": "abc"}}).unmet is None


@pytest.mark.parametrize(
    ("group", "unmet"),
    [
        (1, None),
        (3, None),
        ("3", None),  # compared as text, as response_map literals are
        (5, '/status/groupId: expected one of "1", "3", but found "5"'),
        (None, '/status/groupId: expected one of "1", "3", but found null'),
    ],
)
def test_one_of(group: object, unmet: str | None) -> None:
    rules = {"require": [{"pointer": "/status/groupId", "one_of": [1, 3]}]}
    body = {"data": {"id": "x"}, "status": {"groupId": group}}
    assert _judge(rules, body).unmet == unmet


@pytest.mark.parametrize(
    ("body", "unmet"),
    [
        ({"data": {"id": "x"}}, None),
        ({"data": {"id": "x"}, "error": None}, None),
        (
            {"data": {"id": "x"}, "error": {"code": 1}},
            "/error: expected nothing, but found an object",
        ),
    ],
)
def test_absent(body: object, unmet: str | None) -> None:
    assert _judge({"require": [{"pointer": "/error", "absent": True}]}, body).unmet == unmet


def test_present_and_list_indices() -> None:
    rules = {"require": [{"pointer": "/messages/1/id", "present": True}]}
    assert _judge(rules, {"messages": [{}, {"id": 7}]}).unmet is None
    assert _judge(rules, {"messages": [{"id": 7}]}).unmet == (
        "/messages/1/id: expected a value, but it is missing"
    )
    assert _judge(rules, {"messages": {"1": {"id": 7}}}).unmet is None  # a key "1" of an object


def test_require_is_not_judged_on_a_non_2xx_answer() -> None:
    judged = _judge(REQUIRE_ID, {"message": "bad"}, status=400)
    assert judged.error is None and judged.unmet is None


def test_an_xml_answer_is_judged_as_its_tree() -> None:
    rules = _rules({"require": [{"pointer": "/response/status", "one_of": ["OK"]}]})
    body = b"<response><status>FAILED</status></response>"
    judged = judge_response(rules, 200, body, "application/xml", {})
    assert judged.unmet == '/response/status: expected one of "OK", but found "FAILED"'
    ok = b"<response><status>OK</status></response>"
    assert judge_response(rules, 200, ok, "text/xml", {}).unmet is None


# -- errors ------------------------------------------------------------------------------------

TWILIO_LIKE = {
    "errors": [
        {"status": [400], "when": {"pointer": "/code", "one_of": [21610]}, "outcome": "opted_out"},
        {"when": {"pointer": "/error/type", "one_of": ["throttle"]}, "outcome": "throttled"},
        {"status": [402], "outcome": "blocked"},
    ],
    "require": [{"capture": "messageid", "present": True}],
}


def test_an_error_code_in_a_non_2xx_answer() -> None:
    judged = _judge(TWILIO_LIKE, {"code": 21610, "message": "unsubscribed"}, status=400)
    assert judged.error == ErrorMatch(outcome="opted_out", index=0, code="21610")


def test_an_entry_s_status_limits_it() -> None:
    assert _judge(TWILIO_LIKE, {"code": 21610}, status=200).error is None
    assert _judge(TWILIO_LIKE, {"code": 21610}, status=422).error is None


def test_throttled_inside_a_200_comes_before_require() -> None:
    judged = _judge(TWILIO_LIKE, {"error": {"type": "throttle"}})
    assert judged.error == ErrorMatch(outcome="throttled", index=1, code="throttle")


def test_a_status_only_entry_has_no_code() -> None:
    judged = _judge(TWILIO_LIKE, b"Payment Required", status=402)
    assert judged.error == ErrorMatch(outcome="blocked", index=2, code=None)


def test_the_first_matching_entry_wins_and_all_conditions_must_hold() -> None:
    rules = {
        "errors": [
            {
                "when": [
                    {"pointer": "/status/name", "present": True},
                    {"pointer": "/status/groupId", "one_of": [5]},
                ],
                "outcome": "rejected",
            },
            {"when": {"pointer": "/status/groupId", "one_of": [5]}, "outcome": "blocked"},
        ]
    }
    named = {"status": {"groupId": 5, "name": "REJECTED_NETWORK"}}
    assert _judge(rules, named).error == ErrorMatch(
        outcome="rejected", index=0, code="REJECTED_NETWORK"
    )
    assert _judge(rules, {"status": {"groupId": 5}}).error == ErrorMatch(
        outcome="blocked", index=1, code="5"
    )
    assert _judge(rules, {"status": {"groupId": 1}}).error is None


def test_a_hostile_answer_is_judged_without_raising() -> None:
    rules = {"require": [{"pointer": "/a/0/b", "one_of": ["x"]}]}
    deep = b"[" * 100_000 + b"]" * 100_000
    assert _judge(rules, deep).unmet == '/a/0/b: expected one of "x", but it is missing'
    assert _judge(rules, b"\xff\xfe").unmet is not None


# -- check rules -------------------------------------------------------------------------------


def test_shipped_rules_check_clean() -> None:
    for name in ("infobip", "twilio"):
        doc = json.loads((ROOT / "integrations" / f"{name}.json").read_text(encoding="utf-8"))
        assert _errors(doc) == []


def test_an_unknown_outcome_is_refused() -> None:
    doc = _document({"errors": [{"status": [400], "outcome": "opted-out"}]})
    assert [p for p, _ in _errors(doc)] == ["/API/SendMessage/response_rules/errors/0/outcome"]
    with pytest.raises(DefinitionError):
        load_definition(doc)


def test_rules_in_a_subscribe_request_are_refused() -> None:
    doc = copy.deepcopy(TEMPLATE)
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": "https://api.example.com/hooks",
        "request_parameters": {"url": "$webhook_url$"},
        "response_rules": {"errors": [{"status": [400], "outcome": "rejected"}]},
    }
    assert _errors(doc) == [
        (
            "/Subscribe/response_rules",
            "response_rules judge a send's answer: only SendMessage, SendFile, SendTyping and "
            "MarkRead",
        )
    ]


@pytest.mark.parametrize(
    ("rules", "response_map", "pointer", "says"),
    [
        (
            {"require": [{"capture": "status", "one_of": ["ok"]}]},
            None,
            "/API/SendMessage/response_rules/require/0/capture",
            "never captures $status$",
        ),
        (
            {"require": [{"pointer": "/id", "present": True}]},
            "$messageid$",
            "/API/SendMessage/response_rules/require/0/pointer",
            "as text",
        ),
        (
            {"require": [{"pointer": "/data/id/x", "present": True}]},
            {"data": {"id": "$messageid$", "ok": True}},
            None,  # a capture may take a list of scalars: an index below it is allowed
            None,
        ),
        (
            {"require": [{"pointer": "/data/ok/x", "present": True}]},
            {"data": {"id": "$messageid$", "ok": True}},
            "/API/SendMessage/response_rules/require/0/pointer",
            'requires a scalar at "/data/ok"',
        ),
        (
            {"require": [{"pointer": "/messages/first/id", "present": True}]},
            {"messages": [{"id": "$messageid$"}]},
            "/API/SendMessage/response_rules/require/0/pointer",
            '"first" is not an index',
        ),
        (
            {
                "errors": [
                    {
                        "status": [400],
                        "when": {"capture": "error", "present": True},
                        "outcome": "rejected",
                    }
                ]
            },
            {"data": {"id": "$messageid$"}, "error": "$error$"},
            "/API/SendMessage/response_rules/errors/0/when",
            "only from a 2xx answer",
        ),
        (
            {
                "errors": [
                    {
                        "when": [
                            {"pointer": "/e", "absent": True},
                            {"pointer": "/e", "one_of": [1]},
                        ],
                        "outcome": "rejected",
                    }
                ]
            },
            None,
            "/API/SendMessage/response_rules/errors/0/when",
            "must be absent and also have a value",
        ),
        (
            {
                "errors": [
                    {"when": {"pointer": "/code", "one_of": [1]}, "outcome": "rejected"},
                    {
                        "status": [400],
                        "when": [
                            {"pointer": "/code", "one_of": [1]},
                            {"pointer": "/x", "present": True},
                        ],
                        "outcome": "blocked",
                    },
                ]
            },
            None,
            "/API/SendMessage/response_rules/errors/1",
            "errors entry 0 matches every answer this one does",
        ),
    ],
)
def test_misuse_is_reported_where_it_is(
    rules: object, response_map: object, pointer: str | None, says: str | None
) -> None:
    errors = _errors(_document(rules, response_map))
    if pointer is None:
        assert errors == []
        return
    assert [p for p, _ in errors] == [pointer]
    assert says is not None and says in errors[0][1]


def test_a_narrower_earlier_entry_does_not_shadow_a_broader_one() -> None:
    rules = {
        "errors": [
            {"status": [400], "when": {"pointer": "/code", "one_of": [1]}, "outcome": "rejected"},
            {"when": {"pointer": "/code", "one_of": [1]}, "outcome": "blocked"},
        ]
    }
    assert _errors(_document(rules)) == []


@pytest.mark.parametrize(
    "condition",
    [
        {"pointer": "code", "one_of": [1]},  # not a JSON Pointer
        {"pointer": "/code"},  # no test
        {"pointer": "/code", "one_of": [1], "absent": True},  # two tests
        {"pointer": "/code", "capture": "messageid", "present": True},  # two subjects
        {"pointer": "/code", "one_of": []},
        {"pointer": "/code", "one_of": [{"a": 1}]},
        {"pointer": "/code", "present": False},
    ],
)
def test_malformed_conditions_are_schema_errors(condition: object) -> None:
    doc = _document({"require": [condition]})
    assert any(p.startswith("/API/SendMessage/response_rules") for p, _ in _errors(doc))


@pytest.mark.parametrize(
    "condition",
    [
        {"pointer": "/code"},
        {"pointer": "/code", "one_of": [1], "absent": True},
        {"pointer": "/code", "capture": "messageid", "present": True},
    ],
)
def test_a_condition_s_shape_is_said_in_one_sentence(condition: object) -> None:
    assert _errors(_document({"require": [condition]})) == [
        (
            "/API/SendMessage/response_rules/require/0",
            "a condition is one subject, pointer or capture, and one test: "
            "one_of, not, present or absent",
        )
    ]


def test_an_errors_entry_without_status_or_when_is_said_in_one_sentence() -> None:
    assert _errors(_document({"errors": [{"outcome": "blocked"}]})) == [
        (
            "/API/SendMessage/response_rules/errors/0",
            "an errors entry has an outcome and says which answers it is for: "
            "status, when, or both",
        )
    ]


# -- the errors outcomes are reported as -------------------------------------------------------


def _answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    return ProviderResponse(status=status, headers=headers or {}, body=body, elapsed_s=0.01)


@pytest.mark.parametrize(
    ("outcome", "cls", "code", "reason", "retryable"),
    [
        (
            "rejected",
            ProviderRejected,
            grpc.StatusCode.INVALID_ARGUMENT,
            "PROVIDER_REJECTED",
            False,
        ),
        (
            "invalid_number",
            ProviderRejected,
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_RECIPIENT",
            False,
        ),
        (
            "opted_out",
            ProviderRefused,
            grpc.StatusCode.FAILED_PRECONDITION,
            "RECIPIENT_OPTED_OUT",
            False,
        ),
        ("blocked", ProviderRefused, grpc.StatusCode.FAILED_PRECONDITION, "MESSAGE_BLOCKED", False),
        (
            "outside_window",
            ProviderRefused,
            grpc.StatusCode.FAILED_PRECONDITION,
            "TEMPLATE_REQUIRED",
            False,
        ),
        (
            "throttled",
            ProviderRateLimited,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "PROVIDER_RATE_LIMITED",
            True,
        ),
        (
            "unavailable",
            ProviderUnavailable,
            grpc.StatusCode.UNAVAILABLE,
            "PROVIDER_UNAVAILABLE",
            True,
        ),
    ],
)
def test_each_outcome_s_error(
    outcome: Any, cls: type, code: grpc.StatusCode, reason: str, retryable: bool
) -> None:
    match = ErrorMatch(outcome=outcome, index=0, code="21610")
    error = from_error_rule(
        _answer(200, b'{"code": 21610}'), match, integration="acme", secrets=NO_SECRETS
    )
    assert type(error) is cls
    assert error.grpc_code == code and error.reason == reason
    assert error.metadata["provider_code"] == "21610"
    assert error.metadata["outcome"] == outcome
    assert error.metadata["provider_status"] == "200"
    assert f"({reason}, provider code 21610)" in error.message
    assert nothing_sent(error) is retryable
    assert to_rpc_status(error).code == code


def test_throttled_carries_the_answer_s_retry_after() -> None:
    match = ErrorMatch(outcome="throttled", index=0, code=None)
    error = from_error_rule(
        _answer(200, b"{}", {"retry-after": "7"}), match, integration="acme", secrets=NO_SECRETS
    )
    assert error.retry_after_s == 7.0
    assert "provider_code" not in error.metadata


def test_the_code_and_excerpt_are_masked() -> None:
    secrets = SecretMask.of(("s3cr3t-token",))
    match = ErrorMatch(outcome="rejected", index=0, code="bad key s3cr3t-token")
    error = from_error_rule(
        _answer(400, b'{"code": "bad key s3cr3t-token"}'), match, integration="a", secrets=secrets
    )
    assert "s3cr3t-token" not in error.message
    assert "s3cr3t-token" not in json.dumps(dict(error.metadata))
    assert MASK in error.metadata["provider_code"]


def test_an_unmet_requirement_says_which_in_the_refusal() -> None:
    error = from_refusal(
        _answer(200, b"{}"),
        refused=None,
        integration="acme",
        secrets=NO_SECRETS,
        unmet="$messageid$: expected a value, but it is missing",
    )
    assert error.reason == "PROVIDER_REFUSED"
    assert error.message == (
        "the provider refused the message ($messageid$: expected a value, but it is missing)"
    )


@pytest.mark.parametrize(
    ("rules", "pointer", "message"),
    [
        (
            {"require": [{"pointer": "/a", "present": True}] * 33},
            "/API/SendMessage/response_rules/require",
            "require holds at most 32 conditions",
        ),
        (
            {"errors": [{"status": [400 + i], "outcome": "blocked"} for i in range(101)]},
            "/API/SendMessage/response_rules/errors",
            "errors holds at most 100 entries",
        ),
        (
            {
                "errors": [
                    {
                        "when": [{"pointer": f"/{i}", "present": True} for i in range(17)],
                        "outcome": "blocked",
                    }
                ]
            },
            "/API/SendMessage/response_rules/errors/0/when",
            "when holds at most 16 conditions",
        ),
        (
            {"require": [{"pointer": "/c", "one_of": list(range(101))}]},
            "/API/SendMessage/response_rules/require/0/one_of",
            "one_of holds at most 100 values",
        ),
        (
            {"require": [{"pointer": "/" + "a" * 512, "present": True}]},
            "/API/SendMessage/response_rules/require/0/pointer",
            "pointer must be at most 512 characters long",
        ),
    ],
)
def test_rules_are_bounded(rules: object, pointer: str, message: str) -> None:
    assert _errors(_document(rules)) == [(pointer, message)]


def test_a_hostile_number_of_entries_is_checked_in_linear_time() -> None:
    entries = [{"status": [400], "outcome": "blocked"}] * 20_000
    problems = _errors(_document({"errors": entries}))
    assert problems[0] == (
        "/API/SendMessage/response_rules/errors",
        "errors holds at most 100 entries",
    )
    assert len(problems) <= 100  # only the first 100 entries are compared


@pytest.mark.parametrize(
    "rules",
    [
        {"errors": [{"status": 400, "when": "x", "outcome": 1}]},
        {"errors": "x", "require": {"a": 1}},
        {"errors": [None, [], {"when": [None, 3, {"capture": 5}]}]},
        {"require": [None, {"pointer": 7, "one_of": "x"}, {"pointer": "code", "present": True}]},
        {"require": [{"capture": ["messageid"], "not": None}]},
        [],
        "x",
    ],
)
def test_broken_rules_are_reported_never_raised(rules: object) -> None:
    problems = check_definition(_document(rules))
    assert any(p.severity == "error" for p in problems)
