"""(ext) ``find`` and ``only_if`` (docs/format.md, "Look up before create"): loading, the search
in an answer, and the checks that report their misuse at a JSON Pointer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.engine import FindRule, StepCondition, check_definition, find_in_answer, load_definition
from server.engine._render import response_variables, template_variables

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "definitions" / "seed"

WEBHOOKS = [
    {"id": 7, "name": "other", "url": "https://x.example/a", "triggerScope": "SENT"},
    {"id": 8, "name": "msgbridge", "url": "https://x.example/b", "triggerScope": "RECEIVED"},
    {"id": 9, "name": "msgbridge", "url": "https://x.example/c", "triggerScope": "SENT"},
]


def rule(where: dict[str, str], capture: dict[str, str], in_: str = "") -> FindRule:
    return FindRule(in_=in_, where=tuple(where.items()), capture=tuple(capture.items()))


def answer(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_the_first_element_whose_every_field_equals_gives_its_captures() -> None:
    found = find_in_answer(
        [rule({"/name": "$Name$", "/triggerScope": "SENT"}, {"hook": "/id", "at": "/url"})],
        answer(WEBHOOKS),
        "application/json",
        {"Name": "msgbridge"},
    )
    assert found.problem is None
    assert found.values == {"hook": "9", "at": "https://x.example/c"}  # a number as its text


def test_no_match_leaves_the_captures_without_a_value() -> None:
    found = find_in_answer(
        [rule({"/name": "msgbridge", "/triggerScope": "NONE"}, {"hook": "/id"})],
        answer(WEBHOOKS),
        "application/json",
        {},
    )
    assert found.values == {"hook": None}
    assert found.problem is None


def test_a_where_template_without_a_value_matches_nothing() -> None:
    found = find_in_answer([rule({"/name": "$Name$"}, {"hook": "/id"})], answer(WEBHOOKS), None, {})
    assert found.values == {"hook": None}


def test_a_list_inside_the_answer_and_several_searches() -> None:
    body = answer({"data": {"items": WEBHOOKS}})
    found = find_in_answer(
        [
            rule({"/triggerScope": "RECEIVED"}, {"received": "/id"}, in_="/data/items"),
            rule({"/triggerScope": "SENT", "/name": "msgbridge"}, {"sent": "/id"}, "/data/items"),
        ],
        body,
        "application/json",
        {},
    )
    assert found.values == {"received": "8", "sent": "9"}


def test_an_answer_without_the_list_is_a_problem_that_fails_the_step() -> None:
    for body, in_, said in (
        (answer({"data": {}}), "/data/items", "the answer has no list at /data/items"),
        (b"not json", "", "the answer has no list as the whole answer"),
        (answer({"items": "x"}), "/items", "the answer has no list at /items"),
    ):
        found = find_in_answer([rule({"/a": "b"}, {"c": "/d"}, in_=in_)], body, None, {})
        assert found.problem == said


def test_an_element_without_a_scalar_at_the_capture_gives_no_value() -> None:
    body = answer([{"name": "a", "id": {"nested": 1}}, {"name": "b"}])
    for name in ("a", "b"):
        found = find_in_answer([rule({"/name": name}, {"hook": "/id"})], body, None, {})
        assert found.values == {"hook": None}


def test_elements_that_are_not_objects_never_match() -> None:
    body = answer([1, "msgbridge", None, [], {"name": "msgbridge", "id": "h1"}])
    found = find_in_answer([rule({"/name": "msgbridge"}, {"hook": "/id"})], body, None, {})
    assert found.values == {"hook": "h1"}


# -- the file ---------------------------------------------------------------------------------


def subscribing(subscribe: Any, unsubscribe: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SEED / "complete_example.json").read_text())
    doc["properties"] = ["API key", {"name": "Name", "secret": False}]
    doc["Subscribe"] = subscribe
    if unsubscribe is not None:
        doc["Unsubscribe"] = unsubscribe
    return doc


LOOKUP = {
    "request_method": "GET",
    "request_url": "https://api.example.com/webhooks?key=$API key$",
    "find": {"where": {"/name": "$Name$"}, "capture": {"hook": "/id"}},
}
UPDATE = {
    "request_method": "POST",
    "request_url": "https://api.example.com/webhooks/$hook$",
    "request_parameters": {"url": "$webhook_url$"},
    "only_if": {"present": "hook"},
}
CREATE = {
    "request_method": "POST",
    "request_url": "https://api.example.com/webhooks",
    "request_parameters": {"name": "$Name$", "url": "$webhook_url$"},
    "response_map": {"id": "$hook$"},
    "only_if": {"absent": "hook"},
}
DELETE = {
    "request_method": "DELETE",
    "request_url": "https://api.example.com/webhooks/$hook$",
    "only_if": {"present": "hook"},
}


def problems_of(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


def test_a_lookup_then_update_or_create_then_delete_loads_clean() -> None:
    doc = subscribing([LOOKUP, UPDATE, CREATE], DELETE)
    assert problems_of(doc) == []
    definition = load_definition(doc)
    lookup, update, create = definition.subscribe
    assert lookup.find == (rule({"/name": "$Name$"}, {"hook": "/id"}),)
    assert update.only_if == StepCondition(name="hook", present=True)
    assert create.only_if == StepCondition(name="hook", present=False)
    assert response_variables(lookup) == {"hook"}
    assert {"Name", "API key"} <= template_variables(lookup)  # what Subscribe depends on
    assert "hook" in template_variables(update)
    assert definition.unsubscribe[0].only_if == StepCondition(name="hook", present=True)


def test_find_and_only_if_on_a_send_are_reported() -> None:
    doc = subscribing([LOOKUP])
    doc["API"]["SendMessage"]["find"] = LOOKUP["find"]
    doc["API"]["SendMessage"]["only_if"] = {"present": "to"}
    assert problems_of(doc) == [
        "error /API/SendMessage/find: find is for Subscribe and Unsubscribe requests only",
        "error /API/SendMessage/only_if: only_if skips a follow-up request: only a then request "
        "has it (this request is always sent)",
    ]


def test_only_if_on_a_value_not_captured_before_is_reported() -> None:
    # a value kept from the last run may be used before it is captured again when required,
    # and tested either way
    assert problems_of(subscribing([UPDATE, LOOKUP])) == []
    create = {k: v for k, v in CREATE.items() if k != "response_map"}
    assert problems_of(subscribing([create, LOOKUP])) == []
    doc = subscribing([UPDATE], {**DELETE, "only_if": {"absent": "nothing"}})
    doc["API"]["SendMessage"]["request_parameters"]["name"] = "$Name$"
    assert problems_of(doc) == [
        "error /Subscribe/0/only_if/present: only_if tests $hook$, which is neither a property, "
        "nor a value of Subscribe here (captured by a request before this one), nor one "
        "Subscribe keeps",
        "error /Subscribe/0/request_url: unknown placeholder $hook$: not a property of this file, "
        "nor a variable of Subscribe",
        "error /Unsubscribe/only_if/absent: only_if tests $nothing$, which is neither a "
        "property, nor a value of Unsubscribe here (captured by a request before this one), nor "
        "one Subscribe keeps",
        "error /Unsubscribe/request_url: unknown placeholder $hook$: not a property of this "
        "file, nor a variable of Unsubscribe",
    ]


def test_a_find_capture_that_hides_a_name_or_is_captured_twice_is_reported() -> None:
    lookup = {
        **LOOKUP,
        "find": [
            {
                "where": {"/name": "$Name$"},
                "capture": {"Name": "/id", "number": "/n", "hook": "/id"},
            },
            {"where": {"/name": "y"}, "capture": {"hook": "/id", "other": "/id"}},
        ],
        "response_map": [{"other": "$other$"}],
    }
    assert problems_of(subscribing([lookup])) == [
        'error /Subscribe/0/find/0/capture/Name: $Name$ would hide the property "Name"; a capture '
        "names a new variable, so give it a name of its own",
        "error /Subscribe/0/find/0/capture/number: $number$ would hide the gateway's variable of "
        "that name; a capture names a new variable, so give it a name of its own",
        "error /Subscribe/0/find/1/capture/hook: $hook$ is captured twice by this request; one "
        "place says it",
        "error /Subscribe/0/find/1/capture/other: $other$ is captured twice by this request; one "
        "place says it",
    ]


def test_a_find_over_an_answer_read_as_text_is_reported() -> None:
    doc = subscribing([{**LOOKUP, "response_map": "OK:$sid$"}])
    assert problems_of(doc) == [
        "error /Subscribe/0/find: the response_map reads this answer as text; find searches a JSON "
        "answer"
    ]


def test_the_schema_bounds_and_shapes_a_search() -> None:
    many = {f"/k{i}": "v" for i in range(9)}
    doc = subscribing(
        [
            {**LOOKUP, "find": {"in": "items", "where": many, "capture": {"a$b": "/id"}}},
            {**UPDATE, "only_if": {"present": "hook", "absent": "hook"}},
        ]
    )
    problems = problems_of(doc)
    assert any(p.startswith("error /Subscribe/0/find/in:") for p in problems), problems
    assert any(p.startswith("error /Subscribe/0/find/where:") for p in problems), problems
    assert any(p.startswith("error /Subscribe/0/find/capture") for p in problems), problems
    assert any(p.startswith("error /Subscribe/1/only_if") for p in problems), problems
