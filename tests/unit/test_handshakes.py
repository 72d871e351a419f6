"""(ext) Verification handshakes and addresses that are not phone numbers (docs/format.md,
"Verification handshakes" and "Addresses"): loading, matching, answering, and what
``msgbridge check`` says about a handshake or an address kind that could not work."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from client._cases import load_case_set
from client._offline_cases import run_offline
from client.cli import main
from server.core import normalize_address, normalize_number
from server.engine import (
    HandshakeRefused,
    WebhookRequest,
    answer_handshake,
    check_definition,
    load_definition,
    match_handshake,
)

DEFINITIONS = Path(__file__).resolve().parents[1] / "fixtures" / "definitions"

META = {
    "request_method": "GET",
    "request_parameters": {
        "hub.mode": "subscribe",
        "hub.verify_token": "$verify_token$",
        "hub.challenge": "$challenge$",
    },
    "require": {"verify_token": "$Verify token$"},
    "answer": {"content_type": "text/plain", "body": "$challenge$"},
    "signed": False,
}
WECHAT = {
    "request_method": "GET",
    "request_parameters": {
        "signature": "$signature$",
        "timestamp": "$timestamp$",
        "nonce": "$nonce$",
        "echostr": "$echostr$",
    },
    "require": {"signature": {"sha1": ["$Token$", "$timestamp$", "$nonce$"], "sorted": True}},
    "answer": {"body": "$echostr$"},
    "signed": False,
}
SLACK = {
    "request_method": "POST",
    "request_parameters": {"type": "url_verification", "challenge": "$challenge$"},
    "answer": {"content_type": "application/json", "body": '{"challenge": "$challenge$"}'},
}
VIBER = {"request_method": "POST", "request_parameters": {"event": "webhook"}}
VK = {
    "request_method": "POST",
    "request_parameters": {"type": "confirmation", "group_id": "$group$"},
    "answer": {"body": "$Confirmation$"},
}


def _doc(*handshakes: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEFINITIONS / "seed" / "complete_example.json").read_text())
    doc["properties"] = ["API key", "Verify token", "Token", "Confirmation"]
    doc["Handshake"] = list(handshakes)
    doc.update(top)
    return doc


def _problems(doc: dict[str, Any], severity: str = "error") -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in check_definition(doc) if p.severity == severity]


def _get(**query: str) -> WebhookRequest:
    return WebhookRequest(
        method="GET", content_type=None, body=b"", query=tuple(query.items()), headers=()
    )


def _post(body: object) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        content_type="application/json",
        body=json.dumps(body).encode(),
        query=(),
        headers=(),
    )


PROPERTIES = {
    "API key": "k",
    "Verify token": "Tq9-secret",
    "Token": "wx",
    "Confirmation": "c0nf1rm",
}


# -- loading and answering ---------------------------------------------------------------------


def test_all_five_platforms_load_clean_and_are_typed() -> None:
    doc = _doc(META, WECHAT, SLACK, VIBER, VK)
    assert _problems(doc) == []
    assert _problems(doc, "warning") == []
    definition = load_definition(doc)
    assert [h.pointer for h in definition.handshakes] == [f"/Handshake/{i}" for i in range(5)]
    assert definition.handshakes[0].signed is False and definition.handshakes[2].signed is True
    digest = definition.handshakes[1].require["signature"]
    assert not isinstance(digest, str) and digest.algorithm == "sha1" and digest.sorted
    assert definition.addresses == "phone"


def test_meta_is_answered_with_the_challenge_only_for_the_token() -> None:
    definition = load_definition(_doc(META))
    good = match_handshake(
        definition,
        _get(**{"hub.mode": "subscribe", "hub.verify_token": "Tq9-secret", "hub.challenge": "42"}),
    )
    assert good is not None
    answer = answer_handshake(good, PROPERTIES)
    assert (answer.status, answer.content_type, answer.body) == (200, "text/plain", "42")
    bad = match_handshake(
        definition,
        _get(**{"hub.mode": "subscribe", "hub.verify_token": "Zx1-guess", "hub.challenge": "42"}),
    )
    assert bad is not None
    with pytest.raises(HandshakeRefused) as refused:
        answer_handshake(bad, PROPERTIES)
    assert "Zx1" not in refused.value.reason and "Tq9" not in refused.value.reason
    # an installation without the property never verifies
    with pytest.raises(HandshakeRefused):
        answer_handshake(good, {**PROPERTIES, "Verify token": ""})
    # another mode is not this handshake
    assert match_handshake(definition, _get(**{"hub.mode": "unsubscribe"})) is None


def test_wechat_digest_over_sorted_values() -> None:
    definition = load_definition(_doc(WECHAT))
    signature = hashlib.sha1("".join(sorted(["wx", "1700000000", "n0nce"])).encode()).hexdigest()
    query = {"timestamp": "1700000000", "nonce": "n0nce", "echostr": "e-123"}
    good = match_handshake(definition, _get(signature=signature, **query))
    assert good is not None and answer_handshake(good, PROPERTIES).body == "e-123"
    bad = match_handshake(definition, _get(signature="0" * 40, **query))
    assert bad is not None
    with pytest.raises(HandshakeRefused):
        answer_handshake(bad, PROPERTIES)


def test_a_json_answer_escapes_what_it_echoes_and_vk_answers_a_property() -> None:
    definition = load_definition(_doc(SLACK, VK, VIBER))
    slack = match_handshake(definition, _post({"type": "url_verification", "challenge": 'a"}b'}))
    assert slack is not None
    assert json.loads(answer_handshake(slack, PROPERTIES).body) == {"challenge": 'a"}b'}
    vk = match_handshake(definition, _post({"type": "confirmation", "group_id": 1}))
    assert vk is not None and answer_handshake(vk, PROPERTIES).body == "c0nf1rm"
    viber = match_handshake(definition, _post({"event": "webhook", "timestamp": 1}))
    assert viber is not None and answer_handshake(viber, PROPERTIES).body == ""
    # an ordinary message is no handshake
    assert match_handshake(definition, _post({"event": "message"})) is None


def test_an_oversized_answer_is_refused() -> None:
    definition = load_definition(_doc(SLACK))
    big = match_handshake(definition, _post({"type": "url_verification", "challenge": "x" * 5000}))
    assert big is not None
    with pytest.raises(HandshakeRefused):
        answer_handshake(big, PROPERTIES)


# -- msgbridge check ---------------------------------------------------------------------------


def test_require_must_name_a_capture() -> None:
    wrong = {**META, "require": {"verify": "$Verify token$"}}
    assert [p for p, _ in _problems(_doc(wrong))] == ["/Handshake/0/require/verify"]


def test_a_capture_may_not_have_a_property_name() -> None:
    # the request would supply the value it is checked against
    wrong = {
        **META,
        "request_parameters": {"hub.verify_token": "$Verify token$", "hub.challenge": "$c$"},
        "require": {"Verify token": "$Verify token$"},
        "answer": {"body": "$c$"},
    }
    assert [p for p, _ in _problems(_doc(wrong))] == [
        "/Handshake/0/request_parameters/hub.verify_token"
    ]


def test_templates_name_properties_or_captures() -> None:
    wrong = {**META, "answer": {"body": "$chalenge$"}}
    problems = _problems(_doc(wrong))
    assert [p for p, _ in problems] == ["/Handshake/0/answer/body"]
    assert "$chalenge$" in problems[0][1]


def test_the_answer_is_a_small_textual_2xx_without_a_placeholder_warning() -> None:
    wrong = {**META, "answer": {"status": 403, "content_type": "image/png", "body": "$challenge$"}}
    assert [p for p, _ in _problems(_doc(wrong))] == [
        "/Handshake/0/answer/content_type",
        "/Handshake/0/answer/status",
    ]
    assert [p for p, _ in _problems(_doc(META), "warning") if p.startswith("/Handshake")] == []


def test_an_unsigned_handshake_without_require_is_warned_about() -> None:
    open_one = {**SLACK, "signed": False}
    warned = [p for p, _ in _problems(_doc(open_one), "warning") if p.startswith("/Handshake")]
    assert warned == ["/Handshake/0/signed"]


def test_a_property_used_only_by_a_handshake_is_used() -> None:
    doc = _doc(META)
    doc["properties"] = ["API key", "Verify token"]
    assert _problems(doc, "warning") == []


def test_a_digest_names_one_algorithm() -> None:
    wrong = {**WECHAT, "require": {"signature": {"sha1": ["$Token$"], "sha256": ["$Token$"]}}}
    assert any(p.startswith("/Handshake/0/require") for p, _ in _problems(_doc(wrong)))


def test_ids_are_not_written_as_phone_numbers() -> None:
    problems = _problems(_doc(addresses="id", number_format="e164"))
    assert [p for p, _ in problems] == ["/number_format"]
    assert _problems(_doc(addresses="id")) == []
    assert load_definition(_doc(addresses="username")).addresses == "username"
    assert [p for p, _ in _problems(_doc(addresses="email"))] == ["/addresses"]


def test_a_pattern_on_platform_ids_is_not_warned_about_phone_shapes() -> None:
    doc = _doc()
    doc["Webhook"][2]["patterns"] = {"from": "^-?[0-9]{1,20}$"}
    warned = [p for p, _ in _problems(doc, "warning") if p.startswith("/Webhook")]
    assert warned == ["/Webhook/2/patterns/from"]  # a phone definition: a sender name refused
    doc["addresses"] = "id"
    assert [p for p, _ in _problems(doc, "warning") if p.startswith("/Webhook")] == []


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["-1001234567890", "5551234567", "106540352242922", " U4af4980629 ", "@some_bot"]
)
def test_ids_are_kept_verbatim(written: str) -> None:
    assert normalize_address(written, "US", "id") == written.strip()
    assert normalize_address(written, "US", "username") == written.strip()


def test_phone_addresses_are_normalised_as_before() -> None:
    for written in ("5551234567", "-1001234567890", "A0PNCHHK2", "+1 (555) 123-4567"):
        assert normalize_address(written, "US", "phone") == normalize_number(written, "US")
    # what an id would become as a phone number: why ids must not be read as one
    assert normalize_number("5551234567", "US") == "+15551234567"
    assert normalize_number("-1001234567890", None) == "1001234567890"


# -- msgbridge check --match -------------------------------------------------------------------


def test_check_match_says_a_handshake_is_answered_and_no_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(META)
    doc["properties"] = ["API key", "Verify token"]
    file = tmp_path / "meta.json"
    file.write_text(json.dumps(doc))
    query = tmp_path / "query.txt"
    query.write_text("hub.mode=subscribe&hub.verify_token=abc&hub.challenge=99")
    argv = ["check", "--match", str(file), "--webhook", str(query), "--method", "GET"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["events"] == [] and out["unmatched"] == []
    assert out["handshake"]["pointer"] == "/Handshake/0"
    assert out["handshake"]["captures"]["challenge"] == "99"
    assert out["handshake"]["require"] == ["verify_token"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "verification handshake /Handshake/0" in text and "403" in text


# -- msgbridge test (offline) ------------------------------------------------------------------


def _case_set(tmp_path: Path, token: str) -> Path:
    folder = tmp_path / f"cases-{token}"
    (folder / "webhooks").mkdir(parents=True)
    install = {"properties": {"API key": "k", "Verify token": "Tq9-secret"}, "numbers": {}}
    (folder / "install.json").write_text(json.dumps(install))
    case = {
        "source": "made up",
        "method": "GET",
        "query": f"hub.mode=subscribe&hub.verify_token={token}&hub.challenge=C-1",
        "body_text": "",
        "expect_answer": {"status": 200, "content_type": "text/plain", "body_text": "C-1"},
        "expect_events": [],
    }
    (folder / "webhooks" / "verify.json").write_text(json.dumps(case))
    return folder


def test_msgbridge_test_runs_a_handshake_case_as_the_endpoint_answers_it(tmp_path: Path) -> None:
    doc = _doc(META)
    doc["properties"] = ["API key", "Verify token"]
    doc["WebhookAuth"] = {"type": "hmac", "header": "X-Hub-Signature-256", "secret": "$API key$"}
    definition = load_definition(doc)
    [good] = run_offline(doc, definition, load_case_set(_case_set(tmp_path, "Tq9-secret")))
    assert good.problems == []
    [bad] = run_offline(doc, definition, load_case_set(_case_set(tmp_path, "Zx1-guess")))
    assert any(p.startswith("refused (403)") for p in bad.problems)
