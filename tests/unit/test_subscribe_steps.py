"""Which Subscribe step comes next and what its answer captures (server/core/_subscribe_steps.py;
docs/format.md, "Subscribe and Unsubscribe", "Look up before create", "Values Subscribe keeps"):
the pure functions the gateway and ``msgbridge test`` both drive a run with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from server.core import (
    Kept,
    StepFailure,
    SubscribeRun,
    SubscribeStep,
    judge_step_answer,
    next_step,
    numbered_after,
)
from server.engine import Definition, Value, load_definition
from server.outbound import ProviderResponse
from server.security.secrets import SecretMask

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "definitions" / "seed"
NUMBERS = ("+15550001111", "+15550002222")

LOOKUP = {
    "request_method": "GET",
    "request_url": "https://api.example.com/webhooks",
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
NUMBER_LOOKUP = {
    "request_method": "GET",
    "request_url": "https://api.example.com/numbers",
    "request_parameters": {"e164": "$number$"},
    "response_map": {"sid": "$number_sid$"},
}
NUMBER_UPDATE = {
    "request_method": "POST",
    "request_url": "https://api.example.com/numbers/$number_sid$",
    "request_parameters": {"hook": "$hook$"},
}
DELETE_HOOK = {
    "request_method": "DELETE",
    "request_url": "https://api.example.com/webhooks/$hook$",
    "only_if": {"present": "hook"},
}
RESET_NUMBER = {
    "request_method": "DELETE",
    "request_url": "https://api.example.com/numbers/$number_sid$/hook",
}


def definition() -> Definition:
    doc: dict[str, Any] = json.loads((SEED / "complete_example.json").read_text())
    doc["properties"] = ["API key", {"name": "Name", "secret": False}]
    doc["Subscribe"] = [LOOKUP, UPDATE, CREATE, NUMBER_LOOKUP, NUMBER_UPDATE]
    doc["Unsubscribe"] = [DELETE_HOOK, RESET_NUMBER]
    return load_definition(doc)


def run_of(requests: Any, numbered: frozenset[str] = frozenset({"number"})) -> SubscribeRun:
    gateway = {"API key": "k", "Name": "msgbridge", "webhook_url": "https://gw/h", "orgid": "o"}
    return SubscribeRun(requests=requests, gateway=gateway, numbers=NUMBERS, numbered=numbered)


def drive(run: SubscribeRun, kept: Kept, answers: list[dict[str, Value]]) -> list[SubscribeStep]:
    """The steps a run makes when step i's answer captures ``answers[i]``."""
    made: list[SubscribeStep] = []
    step = next_step(run, kept, None)
    while step is not None:
        made.append(step)
        kept.record(answers[len(made) - 1], step.number)
        step = next_step(run, kept, step)
    return made


def shown(steps: list[SubscribeStep]) -> list[tuple[int, str | None]]:
    return [(s.index, s.number) for s in steps]


def test_a_lookup_that_finds_nothing_creates_then_each_number_is_made_with_its_own_values() -> None:
    subscribe = definition().subscribe
    kept = Kept()
    answers: list[dict[str, Value]] = [
        {"hook": None},  # the lookup finds none: UPDATE is skipped, CREATE made
        {"hook": "h1"},
        {"number_sid": "PN1"},
        {"number_sid": "PN2"},
        {},
        {},
    ]
    made = drive(run_of(subscribe), kept, answers)
    per_number = [(4, NUMBERS[0]), (4, NUMBERS[1]), (5, NUMBERS[0]), (5, NUMBERS[1])]
    assert shown(made) == [(1, None), (3, None), *per_number]
    assert made[4].variables["number_sid"] == "PN1" and made[5].variables["number_sid"] == "PN2"
    assert made[4].variables["hook"] == "h1"  # a shared capture reaches the per-number steps
    assert made[0].where == "request 1 (/Subscribe/0)"
    assert kept.shared == {"hook": "h1"}
    assert kept.numbers == {NUMBERS[0]: {"number_sid": "PN1"}, NUMBERS[1]: {"number_sid": "PN2"}}


def test_a_lookup_that_finds_one_updates_it_and_creates_none() -> None:
    sid: dict[str, Value] = {"number_sid": "x"}
    answers: list[dict[str, Value]] = [{"hook": "h9"}, {}, sid, sid, sid, sid]
    made = drive(run_of(definition().subscribe), Kept(), answers)
    assert [s.index for s in made][:2] == [1, 2]
    assert 3 not in [s.index for s in made]
    assert made[1].variables["hook"] == "h9"


def test_unsubscribe_uses_what_subscribe_kept_per_number_and_shared() -> None:
    defined = definition()
    kept = Kept(
        shared={"hook": "h1"},
        numbers={NUMBERS[0]: {"number_sid": "PN1"}, NUMBERS[1]: {"number_sid": "PN2"}, "+1999": {}},
    )
    kept.retain(NUMBERS)
    assert set(kept.numbers) == set(NUMBERS)  # a number no longer assigned is dropped
    run = run_of(defined.unsubscribe, numbered_after(defined.subscribe))
    made = drive(run, kept, [{}, {}, {}])
    assert shown(made) == [(1, None), (2, NUMBERS[0]), (2, NUMBERS[1])]
    assert [s.variables["number_sid"] for s in made[1:]] == ["PN1", "PN2"]
    # Without a kept hook, the DELETE's only_if skips it.
    assert shown(drive(run, Kept(), [{}, {}])) == [(2, NUMBERS[0]), (2, NUMBERS[1])]


def response(status: int, body: Any) -> ProviderResponse:
    headers: CIMultiDict[str] = CIMultiDict([("Content-Type", "application/json")])
    body_bytes = json.dumps(body).encode()
    return ProviderResponse(status=status, headers=headers, body=body_bytes, elapsed_s=0.0)


def judged(index: int, status: int, body: Any) -> dict[str, Value] | StepFailure:
    step = next_step(run_of(definition().subscribe), Kept(), None)
    assert step is not None
    if index == 3:  # CREATE, made when no hook is kept
        step = next_step(run_of(definition().subscribe), Kept(), step)
        assert step is not None and step.index == 3
    return judge_step_answer(
        step, response(status, body), integration="x", secrets=SecretMask.of(())
    )


def test_what_an_answer_captures_or_why_it_fails_the_step() -> None:
    assert judged(1, 200, [{"name": "msgbridge", "id": 7}]) == {"hook": "7"}
    assert judged(1, 200, [{"name": "other", "id": 7}]) == {"hook": None}
    assert judged(3, 201, {"id": "h2"}) == {"hook": "h2"}
    missing = judged(1, 200, {"items": []})
    assert isinstance(missing, StepFailure)
    assert missing.text == "request 1 (/Subscribe/0): the answer has no list as the whole answer"
    lacking = judged(3, 200, {"name": "msgbridge"})
    assert isinstance(lacking, StepFailure)
    assert lacking.text == "request 3 (/Subscribe/2): the answer does not contain $hook$"
    refused = judged(3, 400, {"error": "name taken"})
    assert isinstance(refused, StepFailure) and refused.error is not None
    assert refused.text.startswith("request 3 (/Subscribe/2) answered HTTP 400")
