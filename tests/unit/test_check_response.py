"""``msgbridge check --response``, and what ``--match`` says of the live endpoint, over the real
definitions in integrations/ and their providers' documented answers and bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.cli import main

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"
FIXTURES = ROOT / "tests" / "fixtures" / "providers"
BULKSMS = str(INTEGRATIONS / "bulksms.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _answer_argv(tmp_path: Path, answer: dict[str, Any]) -> list[str]:
    """--answer, --status, --content-type and --header for a fixture's documented answer, with
    the content type the fake provider would give it."""
    if answer.get("text") is not None:
        body, content_type = answer["text"], "text/plain; charset=utf-8"
    else:
        body, content_type = json.dumps(answer.get("json")), "application/json"
    argv = ["--answer", write(tmp_path, "answer", body), "--status", str(answer["status"])]
    for name, value in (answer.get("headers") or {}).items():
        if name.lower() == "content-type":
            content_type = value
        else:
            argv += ["--header", f"{name}: {value}"]
    return [*argv, "--content-type", content_type]


def _send_cases() -> list[Any]:
    return [
        pytest.param(path, id=f"{path.parent.parent.name}/{path.stem}")
        for path in sorted(FIXTURES.glob("*/send/*.json"))
        if (INTEGRATIONS / f"{path.parent.parent.name}.json").exists()
    ]


@pytest.mark.parametrize("fixture", _send_cases())
def test_response_gives_each_documented_answer_the_outcome_the_live_send_gets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fixture: Path
) -> None:
    """The outcomes the conformance tests prove live (the reply's provider id, or the gRPC code,
    reason and metadata), offline from the shipped file and the documented answer."""
    provider = fixture.parent.parent.name
    case = json.loads(fixture.read_text(encoding="utf-8"))
    install = json.loads((FIXTURES / provider / "install.json").read_text(encoding="utf-8"))
    variables = write(
        tmp_path, "vars.json", json.dumps({**install["properties"], **case.get("properties", {})})
    )
    request = "SendFile" if case["request"].get("kind") == "mms" else "SendMessage"
    # A send of several requests (docs/format.md, "Several requests per send") lists its answers:
    # the send's own request judges the first, whose id is the reply's provider_message_id.
    several = isinstance(case["answer"], list)
    first_answer = case["answer"][0] if several else case["answer"]
    argv = [
        "--response",
        str(INTEGRATIONS / f"{provider}.json"),
        "--request",
        request,
        "--vars",
        variables,
        *_answer_argv(tmp_path, first_answer),
    ]
    code, out, _ = run(capsys, *argv, "--json")
    result = json.loads(out)
    wanted_error = case.get("expect_error")
    if several and wanted_error and wanted_error["reason"] == "PARTIALLY_SENT":
        wanted_error = None  # the first request succeeded; a later one failed
    if wanted_error is None:
        assert (code, result["accepted"]) == (0, True), result
        wanted = case.get("expect_reply", {})
        if "provider_message_id" in wanted:
            # a reply carries "" for an unknown id (protobuf), the check null
            assert (result["provider_message_id"] or "") == wanted["provider_message_id"]
    else:
        assert (code, result["accepted"]) == (1, False)
        error = result["error"]
        assert (error["code"], error["reason"]) == (wanted_error["code"], wanted_error["reason"])
        for key, value in wanted_error.get("metadata", {}).items():
            assert error["metadata"][key] == value


def test_response_text_for_an_accepted_and_an_opted_out_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    accepted = json.loads((FIXTURES / "bulksms" / "send" / "sms_gsm.json").read_text())["answer"]
    code, out, _ = run(capsys, "--response", BULKSMS, *_answer_argv(tmp_path, accepted))
    assert code == 0
    assert out == 'accepted (HTTP 201): the message is sent, provider message id "1234567890"\n'

    blocked = json.loads((FIXTURES / "bulksms" / "send" / "sms_blocked.json").read_text())
    code, out, _ = run(capsys, "--response", BULKSMS, *_answer_argv(tmp_path, blocked["answer"]))
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == "fails (HTTP 201): FAILED_PRECONDITION RECIPIENT_OPTED_OUT"
    assert lines[1].startswith("  the recipient has opted out of messages from this sender")
    assert "  provider_code: FAILED.BLOCKED" in lines
    assert "  outcome: opted_out" in lines
    assert lines[-1] == "  the caller may not retry: the failure is the idempotency key's reply"


def test_response_of_a_200_without_an_id_fails_the_require_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "--response", BULKSMS, "--answer", write(tmp_path, "a.json", "[]"), "--json"
    )
    error = json.loads(out)["error"]
    assert code == 1
    assert (error["code"], error["reason"]) == ("FAILED_PRECONDITION", "PROVIDER_REFUSED")
    assert "$messageid$" in error["message"]


def test_response_of_a_429_with_retry_after_says_the_caller_may_retry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--response", BULKSMS, "--answer", write(tmp_path, "a", b""), "--status", "429"]
    code, out, _ = run(capsys, *argv, "--header", "Retry-After: 3")
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == "fails (HTTP 429): RESOURCE_EXHAUSTED PROVIDER_RATE_LIMITED"
    assert "  retry after: 3 s" in lines
    assert "  the caller may retry: nothing was sent, the idempotency key is released" in lines
    assert lines[-1].startswith("note: live, the send path first waits the answer's Retry-After")


def test_response_masks_the_installation_secrets_in_the_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    install = json.loads((FIXTURES / "bulksms" / "install.json").read_text())
    secret = install["properties"]["Token Secret"]
    body = write(tmp_path, "a.json", json.dumps({"detail": f"bad password {secret}"}))
    variables = write(tmp_path, "vars.json", json.dumps(install["properties"]))
    argv = ["--response", BULKSMS, "--answer", body, "--status", "400", "--vars", variables]
    code, out, _ = run(capsys, *argv)
    assert code == 1
    assert out.startswith("fails (HTTP 400): INVALID_ARGUMENT PROVIDER_REJECTED")
    assert secret not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--response", BULKSMS],
        ["--response", BULKSMS, "--answer", BULKSMS, "--webhook", BULKSMS],
        ["--response", BULKSMS, "--answer", BULKSMS, "--request", "Subscribe"],
        ["--response", BULKSMS, "--answer", BULKSMS, "--status", "999"],
        ["--match", BULKSMS, "--webhook", BULKSMS, "--answer", BULKSMS],
        [BULKSMS, "--status", "200"],
    ],
)
def test_response_usage_mistakes_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("msgbridge check: error: ")


# -- --match: what the live endpoint answers and keeps ---------------------------------------------


def test_match_of_an_empty_batch_says_the_live_endpoint_answers_200_and_keeps_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """BulkSMS posts [] to verify a webhook URL (tests/fixtures/providers/bulksms/webhooks/
    validation_empty.json): the live server answers 200, gives no event, keeps nothing."""
    body = write(tmp_path, "empty.json", "[]")
    code, out, _ = run(capsys, "--match", BULKSMS, "--webhook", body)
    assert code == 0
    assert out.splitlines() == [
        "the body holds no payload",
        "the live endpoint answers 200 (text/plain; charset=utf-8, empty body)",
        "it stores the request: no event; nothing is kept as unmatched",
    ]
    code, out, _ = run(capsys, "--match", BULKSMS, "--webhook", body, "--json")
    result = json.loads(out)
    assert code == 0
    assert (result["events"], result["unmatched"]) == ([], [])
    assert result["live"] == {
        "status": 200,
        "content_type": "text/plain; charset=utf-8",
        "body": "",
        "events": 0,
        "kept_unmatched": 0,
        "listed_as_unmatched": False,
        "webhook_auth": False,
    }


def test_match_of_an_unmatched_body_says_it_is_kept_as_unmatched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = write(tmp_path, "odd.json", json.dumps({"hello": "world"}))
    code, out, _ = run(capsys, "--match", BULKSMS, "--webhook", body)
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("the body: no match: ")
    assert lines[-2] == "the live endpoint answers 200 (text/plain; charset=utf-8, empty body)"
    assert lines[-1].startswith("it stores the request: no event; 1 payload kept as unmatched")


def test_match_names_the_definitions_own_answer_and_its_webhook_auth(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Jasmin answers ACK/Jasmin (a WebhookAnswer); a definition with WebhookAuth says the
    signature is checked first."""
    doc = json.loads((INTEGRATIONS / "jasmin.json").read_text())
    answered = doc.get("WebhookAnswer", {}).get("unmatched") or {}
    body = write(tmp_path, "odd", "nothing=here")
    code, out, _ = run(capsys, "--match", str(INTEGRATIONS / "jasmin.json"), "--webhook", body)
    assert code == 1
    assert f"body {json.dumps(answered['body'])}" in out
    signed = next(
        p for p in sorted(INTEGRATIONS.glob("*.json")) if "WebhookAuth" in json.loads(p.read_text())
    )
    code, out, _ = run(capsys, "--match", str(signed), "--webhook", body)
    assert "first, the WebhookAuth check (not made here)" in out


def test_match_of_an_unparseable_body_says_the_live_endpoint_answers_400(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = write(tmp_path, "bad.json", "{not json")
    argv = ["--match", BULKSMS, "--webhook", body, "--content-type", "application/json"]
    code, out, _ = run(capsys, *argv)
    assert code == 2
    assert "the live endpoint answers 400 and keeps nothing" in out
