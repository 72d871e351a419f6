"""(ext) Several requests per send (docs/format.md, "Several requests per send"): how a text is
split, which requests a send plans, what each carries, and the checks on ``split``,
``for_each``, ``then`` and a follow-up's ``only_if``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.engine import (
    MAX_REQUESTS_PER_SEND,
    TooManyRequests,
    check_definition,
    load_definition,
    plan_send,
    render_request,
    segment_count,
    split_text,
)
from server.engine._model import Split

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"
CALL = {"from": "+61855555555", "to": "+61123456789", "API key": "k"}


def _doc(kind: str = "SendMessage", **send: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["API"][kind].update(send)
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p.pointer}: {p.message}" for p in check_definition(doc)]


def _bodies(doc: dict[str, Any], call: dict[str, Any], kind: str = "SendMessage") -> list[Any]:
    definition = load_definition(doc)
    template = definition.send_message if kind == "SendMessage" else definition.send_file
    assert template is not None
    return [
        json.loads(render_request(definition, s.template, s.variables).body or b"null")
        for s in plan_send(template, call)
    ]


# -- splitting a text ------------------------------------------------------------------------------


def test_the_parts_join_to_the_text_and_each_fits_its_length() -> None:
    text = "one two three four five six seven"
    parts = split_text(text, Split(max_length=10))
    assert "".join(parts) == text
    assert all(len(p) <= 10 for p in parts)
    # A cut inside a word moves back after the part's last white space (which keeps at least
    # half of the part); a cut before white space stays.
    assert parts == ("one two ", "three four", " five six ", "seven")


def test_a_word_longer_than_half_a_part_is_cut_at_the_limit() -> None:
    assert split_text("abcdefghij klm", Split(max_length=4)) == ("abcd", "efgh", "ij ", "klm")


def test_an_empty_text_is_no_part() -> None:
    assert split_text("", Split(max_length=5)) == ()


def test_one_segment_parts_hold_a_whole_sms() -> None:
    text = "a" * 161
    assert split_text(text, Split(max_segments=1)) == ("a" * 160, "a")
    assert split_text("a" * 160, Split(max_segments=1)) == ("a" * 160,)


def test_two_segment_parts_hold_two_concatenated_segments() -> None:
    parts = split_text("a" * 700, Split(max_segments=2))
    assert [len(p) for p in parts] == [306, 306, 88]
    assert all(segment_count(p) <= 2 for p in parts)


def test_an_escape_pair_is_never_cut() -> None:
    # "€" takes two septets (escape and code): a part of 160 septets cannot end with half of it.
    text = "a" * 159 + "€" + "b"
    parts = split_text(text, Split(max_segments=1))
    assert parts == ("a" * 159, "€b")


def test_a_surrogate_pair_is_never_cut_and_the_whole_text_decides_the_encoding() -> None:
    # One emoji makes the whole text UCS-2: 70 units a segment, the emoji counting two.
    text = "a" * 69 + "😀" + "a" * 10
    parts = split_text(text, Split(max_segments=1))
    assert parts == ("a" * 69, "😀" + "a" * 10)
    assert all(segment_count(p, "UCS-2") == 1 for p in parts)


def test_splitting_a_huge_text_stops_past_the_bound() -> None:
    parts = split_text("x" * 1_000_000, Split(max_length=1))
    assert len(parts) == MAX_REQUESTS_PER_SEND + 1


# -- planning --------------------------------------------------------------------------------------


def test_a_send_without_the_keys_is_one_step_with_the_same_objects() -> None:
    definition = load_definition(_doc())
    call = {**CALL, "content": "hello"}
    (step,) = plan_send(definition.send_message, call)
    assert step.template is definition.send_message
    assert step.variables is call


def test_one_request_per_part_carries_the_part_and_its_number() -> None:
    doc = _doc(
        split={"max_length": 6},
        request_parameters={"to": "$to$", "text": "$content$", "n": "$part$/$parts$"},
    )
    assert _problems(doc) == []
    bodies = _bodies(doc, {**CALL, "content": "hello world"})
    assert bodies == [
        {"to": "+61123456789", "text": "hello ", "n": "1/2"},
        {"to": "+61123456789", "text": "world", "n": "2/2"},
    ]


def test_all_parts_in_one_request_as_a_list() -> None:
    doc = _doc(
        split={"max_length": 6},
        for_each="once",
        request_parameters={"to": "$to$", "texts": "$text_parts$"},
    )
    assert _problems(doc) == []
    assert _bodies(doc, {**CALL, "content": "hello world"}) == [
        {"to": "+61123456789", "texts": ["hello ", "world"]}
    ]


def test_encoding_of_every_part_is_the_whole_texts() -> None:
    doc = _doc(
        split={"max_length": 5},
        request_parameters={"text": "$content$", "coding": "$encoding$"},
    )
    assert _bodies(doc, {**CALL, "content": "abcde😀"}) == [
        {"text": "abcde", "coding": "UCS-2"},
        {"text": "😀", "coding": "UCS-2"},
    ]


def test_one_request_per_media_item_then_the_caption_when_there_is_one() -> None:
    doc = _doc(
        "SendFile",
        for_each="media",
        request_parameters={"media": "$content$", "n": "$part$"},
        then={
            "only_if": {"present": "text"},
            "request_method": "POST",
            "request_url": "https://api.example.com/sms",
            "split": {"max_length": 4},
            "request_parameters": {"text": "$text$"},
            "response_map": {"id": "$messageid$"},
        },
    )
    assert _problems(doc) == []
    call = {
        **CALL,
        "content": "https://a.example/1.jpg",
        "media_urls": ("https://a.example/1.jpg", "https://a.example/2.jpg"),
        "text": "hi there",
    }
    assert _bodies(doc, call, "SendFile") == [
        {"media": "https://a.example/1.jpg", "n": "1"},
        {"media": "https://a.example/2.jpg", "n": "2"},
        {"text": "hi "},
        {"text": "ther"},
        {"text": "e"},
    ]
    steps = plan_send(load_definition(doc).send_file, call)  # type: ignore[arg-type]
    assert [s.template.pointer for s in steps] == ["/API/SendFile"] * 2 + ["/API/SendFile/then"] * 3
    # No caption: the follow-up is skipped.
    assert _bodies(doc, {**call, "text": None}, "SendFile") == [
        {"media": "https://a.example/1.jpg", "n": "1"},
        {"media": "https://a.example/2.jpg", "n": "2"},
    ]


def test_media_urls_render_as_a_list_in_one_request() -> None:
    doc = _doc("SendFile", request_parameters={"media": "$media_urls$"})
    assert _problems(doc) == []
    call = {**CALL, "content": "https://a.example/1", "media_urls": ("https://a.example/1", "b")}
    assert _bodies(doc, call, "SendFile") == [{"media": ["https://a.example/1", "b"]}]


def test_more_requests_than_the_bound_fail_before_anything_is_built() -> None:
    definition = load_definition(_doc(split={"max_length": 1}))
    with pytest.raises(TooManyRequests) as caught:
        plan_send(definition.send_message, {**CALL, "content": "x" * 17})
    assert "at most 16" in str(caught.value)
    assert len(plan_send(definition.send_message, {**CALL, "content": "x" * 16})) == 16


# -- checks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send", "kind", "pointer", "words"),
    [
        ({"split": {}}, "SendMessage", "/API/SendMessage/split", "exactly one"),
        (
            {"split": {"max_length": 5, "max_segments": 1}},
            "SendMessage",
            "/API/SendMessage/split",
            "not both",
        ),
        ({"split": {"max_length": 0}}, "SendMessage", "/API/SendMessage/split/max_length", ""),
        ({"for_each": "media"}, "SendMessage", "/API/SendMessage/for_each", "no media"),
        ({"for_each": "part"}, "SendMessage", "/API/SendMessage/for_each", "needs split"),
        (
            {"split": {"max_length": 5}, "for_each": "once"},
            "SendMessage",
            "/API/SendMessage/split",
            "go nowhere",
        ),
        (
            {"only_if": {"present": "text"}},
            "SendFile",
            "/API/SendFile/only_if",
            "only a then request",
        ),
        (
            {"request_parameters": {"n": "$part$"}},
            "SendMessage",
            "/API/SendMessage/request_parameters/n",
            "$part$ is not available",
        ),
        (
            {"request_parameters": {"all": "$text_parts$"}},
            "SendFile",
            "/API/SendFile/request_parameters/all",
            "$text_parts$ is not available",
        ),
        (
            {"request_parameters": {"m": "$media_urls$"}},
            "SendMessage",
            "/API/SendMessage/request_parameters/m",
            "$media_urls$ is not available",
        ),
    ],
)
def test_misuse_is_reported_at_its_pointer(
    send: dict[str, Any], kind: str, pointer: str, words: str
) -> None:
    problems = [p for p in _problems(_doc(kind, **send)) if p.startswith(f"error {pointer}:")]
    assert problems, _problems(_doc(kind, **send))
    assert any(words in p for p in problems), problems


def _then(**extra: Any) -> dict[str, Any]:
    return {
        "request_method": "POST",
        "request_url": "https://api.example.com/sms",
        "request_parameters": {"text": "$text$"},
        "response_map": {"id": "$messageid$"},
        **extra,
    }


@pytest.mark.parametrize(
    ("then", "pointer", "words"),
    [
        (
            _then(only_if={"present": "nothing"}),
            "/API/SendFile/then/only_if/present",
            "never changes",
        ),
        (_then(only_if={"present": "$text$"}), "/API/SendFile/then/only_if/present", ""),
        (_then(then=_then()), "/API/SendFile/then/then", "a then of its own"),
        (
            _then(request_parameters={"text": "$texte$"}),
            "/API/SendFile/then/request_parameters/text",
            "unknown placeholder",
        ),
    ],
)
def test_then_misuse_is_reported_at_its_pointer(
    then: dict[str, Any], pointer: str, words: str
) -> None:
    problems = _problems(_doc("SendFile", then=then))
    assert any(p.startswith(f"error {pointer}:") and words in p for p in problems), problems


def test_the_keys_are_for_sends_only() -> None:
    doc = _doc()
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": "https://api.example.com/hooks",
        "request_parameters": {"url": "$webhook_url$"},
        "split": {"max_length": 5},
    }
    assert any(p.startswith("error /Subscribe/split:") for p in _problems(doc)), _problems(doc)
