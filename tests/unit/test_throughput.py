"""(ext) A definition's send rates and the send requests a provider deduplicates (docs/format.md,
"Throughput"): how they load, and what ``msgbridge check`` says about them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from client.cli import main
from server.engine import (
    DefinitionError,
    Rate,
    ThroughputDefaults,
    check_definition,
    load_definition,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = json.loads((ROOT / "integrations" / "template.json").read_text())


def _doc(throughput: Any = None, **send: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TEMPLATE)
    if throughput is not None:
        doc["Throughput"] = throughput
    doc["API"]["SendMessage"].update(send)
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


# -- Throughput: loading --------------------------------------------------------------------------


def test_without_throughput_the_definition_states_no_rate() -> None:
    definition = load_definition(_doc())
    assert definition.throughput == ThroughputDefaults(per_number=None, per_installation=None)
    assert definition.throughput == ThroughputDefaults()


def test_rates_load_with_their_unit_and_burst() -> None:
    definition = load_definition(
        _doc(
            {
                "per_number": {"per_second": 1, "unit": "segments", "burst": 4},
                "per_installation": {"per_second": 30, "unit": "messages", "burst": 45},
            }
        )
    )
    assert definition.throughput == ThroughputDefaults(
        per_number=Rate(per_second=1.0, unit="segments", burst=4),
        per_installation=Rate(30.0, "messages", 45),
    )
    assert isinstance(definition.throughput.per_number, Rate)
    assert type(definition.throughput.per_number.per_second) is float


def test_a_whole_burst_written_as_a_decimal_loads_as_an_integer() -> None:
    definition = load_definition(_doc({"per_number": {"per_second": 1, "burst": 2.0}}))
    assert definition.throughput.per_number == Rate(1.0, "messages", 2)
    assert type(definition.throughput.per_number.burst) is int


@pytest.mark.parametrize(
    ("per_second", "burst"), [(1, 1), (0.2, 1), (2.5, 3), (30, 30), (10000, 10000)]
)
def test_the_default_burst_is_one_second_rounded_up_and_the_default_unit_messages(
    per_second: float, burst: int
) -> None:
    definition = load_definition(_doc({"per_installation": {"per_second": per_second}}))
    assert definition.throughput.per_number is None
    assert definition.throughput.per_installation == Rate(float(per_second), "messages", burst)


def test_a_variant_keeps_the_throughput() -> None:
    doc = _doc({"per_number": {"per_second": 3}})
    doc["properties"] = ["API key", {"name": "Mode", "options": ["a", "b"]}]
    doc["variants"] = {
        "Mode": {"b": {"API": {"SendMessage": {"request_url": "https://b.example"}}}}
    }
    definition = load_definition(doc)
    chosen = definition.choose({"Mode": "b"})
    assert chosen is not definition
    assert chosen.send_message.url == "https://b.example"
    expected = ThroughputDefaults(Rate(3.0, "messages", 3))
    assert chosen.throughput == definition.throughput == expected


def test_a_variant_cannot_change_the_throughput() -> None:
    doc = _doc({"per_number": {"per_second": 3}})
    doc["properties"] = ["API key", {"name": "Mode", "options": ["a", "b"]}]
    doc["variants"] = {"Mode": {"b": {"Throughput": {"per_number": {"per_second": 1}}}}}
    assert _problems(doc) == [
        'error /variants/Mode/b/Throughput: unknown key "Throughput"; allowed here: "auth", '
        '"API", "Subscribe", "Unsubscribe", "number_format"'
    ]


# -- Throughput: checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("throughput", "expected"),
    [
        ({}, "/Throughput: Throughput states at least one rate: per_number or per_installation"),
        ({"per_number": {}}, '/Throughput/per_number: per_number is missing the required key '
         '"per_second"'),
        ({"per_number": {"per_second": 0}}, "/Throughput/per_number/per_second: per_second must "
         "be more than 0"),
        ({"per_number": {"per_second": -1}}, "/Throughput/per_number/per_second: per_second must "
         "be more than 0"),
        ({"per_number": {"per_second": 10001}}, "/Throughput/per_number/per_second: per_second "
         "must be at most 10000"),
        ({"per_number": {"per_second": "1"}}, "/Throughput/per_number/per_second: per_second must "
         'be a number, not the string "1"'),
        ({"per_number": {"per_second": True}}, "/Throughput/per_number/per_second: per_second "
         "must be a number, not true"),
        ({"per_number": {"per_second": 1, "unit": "parts"}}, "/Throughput/per_number/unit: unit "
         'must be "messages" or "segments", not "parts"'),
        ({"per_number": {"per_second": 1, "burst": 0}}, "/Throughput/per_number/burst: burst must "
         "be at least 1"),
        ({"per_number": {"per_second": 1, "burst": 1.5}}, "/Throughput/per_number/burst: burst "
         "must be an integer, not the number 1.5"),
        ({"per_number": {"per_second": 1, "burst": 100001}}, "/Throughput/per_number/burst: "
         "burst must be at most 100000"),
        ({"per_sender": {"per_second": 1}}, '/Throughput/per_sender: unknown key "per_sender"; '
         'did you mean "per_number"?'),
        ({"per_number": {"per_second": 1, "per_minute": 60}}, "/Throughput/per_number/per_minute: "
         'unknown key "per_minute"; allowed here: "per_second", "unit", "burst"'),
        ([], "/Throughput: Throughput must be an object, not a list"),
    ],
)  # fmt: skip
def test_a_malformed_throughput_is_an_error_at_its_pointer(throughput: Any, expected: str) -> None:
    doc = _doc(throughput)
    assert _problems(doc) == [f"error {expected}"]
    with pytest.raises(DefinitionError):
        load_definition(doc)


def test_a_number_faster_than_its_installation_in_the_same_unit_is_a_warning() -> None:
    doc = _doc(
        {
            "per_number": {"per_second": 40, "unit": "segments"},
            "per_installation": {"per_second": 30, "unit": "segments"},
        }
    )
    assert _problems(doc) == [
        "warning /Throughput/per_number/per_second: one number may send 40 segments a second, "
        "more than the whole installation's 30 (per_installation): a number never sends faster "
        "than its installation, so this rate is never reached"
    ]
    assert load_definition(doc).warnings[0].pointer == "/Throughput/per_number/per_second"


@pytest.mark.parametrize(
    ("number", "installation"),
    [
        ({"per_second": 30}, {"per_second": 30}),  # equal: one number may use it all
        ({"per_second": 1}, {"per_second": 30, "unit": "messages"}),
        # other units cannot be compared: a message may be many segments
        ({"per_second": 40, "unit": "segments"}, {"per_second": 30}),
        ({"per_second": 40}, {"per_second": 30, "unit": "segments"}),
    ],
)
def test_rates_that_can_hold_together_are_clean(
    number: dict[str, Any], installation: dict[str, Any]
) -> None:
    assert _problems(_doc({"per_number": number, "per_installation": installation})) == []


# -- provider_deduplicates ------------------------------------------------------------------------


def test_provider_deduplicates_is_false_unless_a_request_says_so() -> None:
    definition = load_definition(_doc())
    assert definition.send_message.provider_deduplicates is False
    assert definition.send_file is not None
    assert definition.send_file.provider_deduplicates is False


@pytest.mark.parametrize(
    "send",
    [
        {"request_headers": {"Idempotency-Key": "$gateway_id$"}},
        {"request_parameters": {"to": "$to$", "content": "$content$", "ref": "mb-$gateway_id$"}},
        {"request_query": {"client_ref": "$gateway_id|default:$"}},
        {"request_url": "https://api.example.com/messages/$gateway_id$", "request_method": "PUT"},
        {
            "request_content_type": "application/xml",
            "request_parameters": "<sms><to>$to$</to><text>$content$</text>"
            "<ref>$gateway_id$</ref></sms>",
        },
    ],
    ids=["header", "parameter", "query", "url", "xml"],
)
def test_provider_deduplicates_loads_when_the_request_carries_our_id(send: dict[str, Any]) -> None:
    doc = _doc(provider_deduplicates=True, **send)
    assert _problems(doc) == []
    definition = load_definition(doc)
    assert definition.send_message.provider_deduplicates is True
    assert definition.send_file is not None
    assert definition.send_file.provider_deduplicates is False


def test_provider_deduplicates_without_our_id_in_the_request_is_an_error() -> None:
    doc = _doc(provider_deduplicates=True)
    # our id in a header of auth, or in the response map, is not in the request that is repeated
    doc["API"]["SendMessage"]["response_map"] = {"data": {"id": "$messageid$"}, "ref": "x"}
    assert _problems(doc) == [
        "error /API/SendMessage/provider_deduplicates: a provider can only recognise a repeat of "
        "this request by a key it carries, but $gateway_id$ is nowhere in it (URL, headers, "
        "parameters): send it as the provider's idempotency key or client reference, or leave "
        "provider_deduplicates out"
    ]
    assert _problems(_doc(provider_deduplicates=False)) == []


def test_a_then_request_needs_our_id_of_its_own() -> None:
    then = {
        "request_method": "POST",
        "request_url": "https://api.example.com/sms",
        "request_parameters": {"to": "$to$", "text": "$content$"},
        "provider_deduplicates": True,
    }
    doc = _doc(request_headers={"Idempotency-Key": "$gateway_id$"}, then=then)
    assert [p.split(":")[0] for p in _problems(doc)] == [
        "error /API/SendMessage/then/provider_deduplicates"
    ]
    then["request_headers"] = {"Idempotency-Key": "$gateway_id$-text"}
    definition = load_definition(doc)
    assert definition.send_message.provider_deduplicates is False
    assert definition.send_message.then is not None
    assert definition.send_message.then.provider_deduplicates is True


def test_provider_deduplicates_in_subscribe_is_an_error() -> None:
    doc = _doc()
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": "https://api.example.com/webhooks",
        "request_parameters": {"url": "$webhook_url$"},
        "provider_deduplicates": False,
    }
    assert _problems(doc) == [
        "error /Subscribe/provider_deduplicates: provider_deduplicates says a send may be retried "
        "after a timeout: only SendMessage and SendFile (and their then) have it"
    ]


def test_provider_deduplicates_must_be_true_or_false() -> None:
    assert _problems(_doc(provider_deduplicates="yes")) == [
        "error /API/SendMessage/provider_deduplicates: provider_deduplicates must be true or "
        'false, not the string "yes"'
    ]


def test_one_key_for_every_part_of_a_split_send_is_a_warning() -> None:
    split = {"split": {"max_length": 160}, "provider_deduplicates": True}
    doc = _doc(request_headers={"Idempotency-Key": "$gateway_id$"}, **split)
    assert _problems(doc) == [
        "warning /API/SendMessage/provider_deduplicates: this send makes one request per part, "
        "all with the same $gateway_id$: a provider that deduplicates by it may take the second "
        "for a repeat of the first; add $part$ to the key ($gateway_id$-$part$)"
    ]
    doc = _doc(request_headers={"Idempotency-Key": "$gateway_id$-$part$"}, **split)
    assert _problems(doc) == []
    once = _doc(
        request_headers={"Idempotency-Key": "$gateway_id$"},
        request_parameters={"to": "$to$", "parts": "$text_parts$"},
        for_each="once",
        **split,
    )
    assert _problems(once) == []


def test_msgbridge_check_prints_the_pointer_and_refuses_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(_doc({"per_number": {"per_second": 0}}, provider_deduplicates=True)))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:/Throughput/per_number/per_second: per_second must be more than 0" in out
    assert f"{path}:/API/SendMessage/provider_deduplicates: a provider can only" in out


# -- the shipped providers -------------------------------------------------------------------------

PACED = sorted(
    p
    for p in (ROOT / "integrations").glob("*.json")
    if p.name not in {"schema.json", "template.json", "demo.json"}
    and '"Throughput"' in p.read_text()
)


def test_twilio_paces_each_long_code_at_one_segment_a_second() -> None:
    definition = load_definition((ROOT / "integrations" / "twilio.json").read_bytes())
    expected = ThroughputDefaults(per_number=Rate(1.0, "segments", 1))
    assert definition.throughput == expected
    # every variant (a Messaging Service sender) keeps it
    assert definition.choose({"Send from": "messaging_service"}).throughput == expected


@pytest.mark.parametrize("path", PACED, ids=lambda p: p.stem)
def test_a_shipped_rate_names_its_source(path: Path) -> None:
    """docs/format.md, "Throughput": a rate only where the provider's documentation states one,
    and the page named in the case set's sources.md."""
    assert load_definition(path.read_bytes()).throughput != ThroughputDefaults()
    sources = ROOT / "tests" / "fixtures" / "providers" / path.stem / "sources.md"
    text = sources.read_text()
    assert "`Throughput`" in text
    assert "https://" in text.split("`Throughput`", 1)[1]
