"""``msgbridge test`` over shipped definitions and their case sets (docs/format.md, "Proving a
definition"): offline, and ``--live`` through a temporary gateway and the fake provider on real
sockets; a case that does not hold fails with what differs, in both modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from client._live_cases import live_settings
from client.cli import main as cli
from server.outbound import OutboundPolicy, PolicyRefused

ROOT = Path(__file__).resolve().parents[2]
KANNEL = ROOT / "integrations" / "kannel.json"
KANNEL_CASES = ROOT / "tests" / "fixtures" / "providers" / "kannel"
MODES = [pytest.param([], id="offline"), pytest.param(["--live"], id="live")]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli(["test", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _copy_cases(tmp_path: Path, name: str = "cases") -> Path:
    return Path(shutil.copytree(KANNEL_CASES, tmp_path / name))


def _edit(file: Path, change: Any) -> None:
    data = json.loads(file.read_text(encoding="utf-8"))
    change(data)
    file.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("mode", MODES)
def test_the_shipped_kannel_definition_passes_its_cases(
    mode: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, str(KANNEL), "--cases", str(KANNEL_CASES), *mode)
    lines = out.splitlines()
    assert status == 0, out
    assert "ok   send/sms" in lines
    assert "ok   webhooks/dlr_delivered" in lines
    assert lines[-1] == "9 passed, 0 failed"


@pytest.mark.parametrize("mode", MODES)
def test_a_case_that_does_not_hold_fails_and_says_what_differs(
    mode: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _copy_cases(tmp_path)
    _edit(cases / "send" / "sms.json", lambda d: d["expect"]["query"].update({"dlr-mask": "31"}))
    _edit(
        cases / "webhooks" / "dlr_failed.json",
        lambda d: d["expect_events"][0].update({"type": "messageDelivered"}),
    )
    status, out, _ = _run(capsys, str(KANNEL), "--cases", str(cases), *mode)
    assert status == 1, out
    assert "FAIL send/sms" in out
    assert '"dlr-mask": ["27"]' in out and '"dlr-mask": ["31"]' in out  # got, want
    assert "FAIL webhooks/dlr_failed" in out
    assert 'event 1 type: got "messageFailed", want "messageDelivered"' in out
    assert out.splitlines()[-1] == "7 passed, 2 failed"


@pytest.mark.parametrize("mode", MODES)
def test_an_expected_error_that_is_not_the_one_the_caller_gets_fails(
    mode: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    provider = ROOT / "tests" / "fixtures" / "providers" / "bulksms"
    cases = Path(shutil.copytree(provider, tmp_path / "bulksms"))
    blocked = cases / "send" / "sms_blocked.json"
    wanted = json.loads(blocked.read_text(encoding="utf-8"))["expect_error"]
    _edit(blocked, lambda d: d["expect_error"].update({"reason": "SOMETHING_ELSE"}))
    definition = ROOT / "integrations" / "bulksms.json"
    status, out, _ = _run(capsys, str(definition), "--cases", str(blocked), *mode)
    assert status == 1
    assert f"error: got ('{wanted['code']}', '{wanted['reason']}')" in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def test_json_output_lists_every_case(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = _copy_cases(tmp_path)
    _edit(cases / "webhooks" / "mo.json", lambda d: d["expect_events"][0].update({"text": "x"}))
    status, out, _ = _run(capsys, str(KANNEL), "--cases", str(cases), "--json")
    result = json.loads(out)
    assert status == 1
    assert (result["passed"], result["failed"], result["skipped"]) == (8, 1, 0)
    failed = [r for r in result["results"] if not r["passed"]]
    assert [r["case"] for r in failed] == ["webhooks/mo"]
    assert failed[0]["problems"] and "event 1 text" in failed[0]["problems"][0]


def test_the_cases_beside_the_definition_are_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definition = Path(shutil.copy(KANNEL, tmp_path / "kannel.json"))
    status, _, err = _run(capsys, str(definition))
    assert status == 2
    assert "kannel.cases: no such case folder" in err
    _copy_cases(tmp_path, "kannel.cases")
    status, out, _ = _run(capsys, str(definition))
    assert status == 0, out
    assert out.splitlines()[-1] == "9 passed, 0 failed"


def test_one_case_file_runs_that_case_alone(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, str(KANNEL), "--cases", str(KANNEL_CASES / "webhooks/mo.json"))
    assert status == 0
    assert out.splitlines() == ["ok   webhooks/mo", "1 passed, 0 failed"]


BULKSMS = ROOT / "integrations" / "bulksms.json"
BULKSMS_CASES = ROOT / "tests" / "fixtures" / "providers" / "bulksms"


@pytest.mark.parametrize("mode", MODES)
def test_subscribe_cases_are_proven_offline_and_live(
    mode: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # A lookup that finds nothing then creates, one that finds and updates; Unsubscribe deletes
    # by the ids kept (docs/format.md, "Look up before create", "Values Subscribe keeps").
    status, out, _ = _run(capsys, str(BULKSMS), "--cases", str(BULKSMS_CASES), *mode)
    assert status == 0, out
    assert "ok   subscribe/create_webhooks" in out.splitlines()
    assert "ok   subscribe/update_existing_webhooks" in out.splitlines()
    assert "skip" not in out
    twilio = ROOT / "tests" / "fixtures" / "providers" / "twilio"
    case = twilio / "subscribe" / "number_sms_url.json"  # per number, a capture chained
    status, out, _ = _run(capsys, str(ROOT / "integrations" / "twilio.json"), "--cases", str(case))
    assert (status, out.splitlines()) == (
        0,
        ["ok   subscribe/number_sms_url", "1 passed, 0 failed"],
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_expected_subscribe_request_fails_with_what_differs(
    mode: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = Path(shutil.copytree(BULKSMS_CASES, tmp_path / "bulksms"))
    case = cases / "subscribe" / "create_webhooks.json"

    def wrong(data: dict[str, Any]) -> None:
        data["steps"][1]["expect"]["json"]["invokeOption"] = "ONE"
        data["unsubscribe"][1]["expect"]["path"] = "/v1/webhooks/103"

    _edit(case, wrong)
    status, out, _ = _run(capsys, str(BULKSMS), "--cases", str(case), *mode)
    assert status == 1, out
    assert "FAIL subscribe/create_webhooks" in out
    assert "request 2 JSON body: got {" in out and '"invokeOption": "MANY"' in out
    assert '"invokeOption": "ONE"' in out  # got, want
    # The id Unsubscribe deletes is the one the create answer gave (102), not the case's.
    assert 'unsubscribe request 2 path: got "/v1/webhooks/102", want "/v1/webhooks/103"' in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.parametrize("mode", MODES)
def test_a_subscribe_step_the_provider_refuses_fails_the_case_and_stops_the_run(
    mode: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = Path(shutil.copytree(BULKSMS_CASES, tmp_path / "bulksms"))
    case = cases / "subscribe" / "create_webhooks.json"

    def refused(data: dict[str, Any]) -> None:
        data["steps"][1]["answer"] = {"status": 400, "json": {"detail": "name already used"}}
        del data["unsubscribe"]

    _edit(case, refused)
    status, out, _ = _run(capsys, str(BULKSMS), "--cases", str(case), *mode)
    assert status == 1, out
    assert "subscription FAILED: request 3 (/Subscribe/2) answered HTTP 400" in out
    # The third request is not made once the second failed.
    assert "requests made [('GET', '/v1/webhooks'), ('POST', '/v1/webhooks')], want [" in out


def test_what_cannot_be_read_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert _run(capsys, str(broken), "--cases", str(KANNEL_CASES))[0] == 2
    cases = _copy_cases(tmp_path)
    (cases / "send" / "sms.json").write_text("[", encoding="utf-8")
    status, _, err = _run(capsys, str(KANNEL), "--cases", str(cases))
    assert status == 2
    assert "sms.json: is not valid JSON" in err


def test_a_set_without_cases_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    shutil.copy(KANNEL_CASES / "install.json", tmp_path / "empty" / "install.json")
    status, out, _ = _run(capsys, str(KANNEL), "--cases", str(tmp_path / "empty"))
    assert status == 1
    assert out.splitlines()[-1] == "0 passed, 0 failed"


@pytest.mark.parametrize("posts", [0, 6, "2", True])
def test_a_posts_count_out_of_bounds_is_reported(
    posts: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _copy_cases(tmp_path)
    _edit(cases / "webhooks" / "mo.json", lambda d: d.update({"posts": posts}))
    status, out, _ = _run(capsys, str(KANNEL), "--cases", str(cases / "webhooks" / "mo.json"))
    assert status == 1
    assert '"posts" must be a whole number from 1 to 5' in out


@pytest.mark.parametrize(
    "definition",
    sorted(p for p in (ROOT / "integrations").glob("*.json") if p.name != "schema.json"),
    ids=lambda p: p.stem,
)
def test_every_shipped_definition_passes_its_cases_offline(
    definition: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command a partner runs, over each shipped file (test_conformance.py runs each case
    live too)."""
    cases = ROOT / "tests" / "fixtures" / "providers" / definition.stem
    status, out, _ = _run(capsys, str(definition), "--cases", str(cases))
    assert status == 0, out
    assert " 0 failed" in out.splitlines()[-1]


def test_the_live_gateway_may_call_loopback_only(tmp_path: Path) -> None:
    """A call no stand-in redirects (another integration's, say) cannot leave the machine: the
    live run's outbound policy denies every address but loopback."""
    settings = live_settings(tmp_path, "kannel", "http://127.0.0.1:8090")
    policy = OutboundPolicy.from_strings(allow=settings.outbound_allow, deny=settings.outbound_deny)
    policy.check_address("127.0.0.1")
    for public in ("93.184.216.34", "8.8.8.8", "128.0.0.1", "126.255.255.255", "2606:4700::1"):
        with pytest.raises(PolicyRefused):
            policy.check_address(public)
    assert settings.provider_stand_in == ("kannel=http://127.0.0.1:8090",)


def test_an_oauth2_definition_passes_live_as_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped OAuth2 file, registered unchanged: its token requests reach the fake provider
    through the stand-in (docs/format.md, "Proving a definition"), as each send case's
    ``oauth2_token`` expects."""
    definition = ROOT / "integrations" / "bandwidth.json"
    before = definition.read_bytes()
    assert b"https://api.bandwidth.com/api/v1/oauth2/token" in before
    cases = ROOT / "tests" / "fixtures" / "providers" / "bandwidth"
    status, out, _ = _run(capsys, str(definition), "--cases", str(cases), "--live")
    assert status == 0, out
    assert out.splitlines()[-1].startswith(f"{len(list(cases.glob('*/*.json')))} passed, 0 failed")
    assert definition.read_bytes() == before


TWILIO = ROOT / "integrations" / "twilio.json"
TWILIO_CASES = ROOT / "tests" / "fixtures" / "providers" / "twilio"


@pytest.mark.parametrize("mode", MODES)
def test_a_case_after_another_proves_a_duplicate_across_cases(
    mode: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = Path(shutil.copytree(TWILIO_CASES, tmp_path / "cases"))
    resent = cases / "webhooks" / "inbound_sms_resent.json"
    status, out, _ = _run(capsys, str(TWILIO), "--cases", str(resent), *mode)
    assert (status, out.splitlines()[-1]) == (0, "1 passed, 0 failed"), out
    # Without the earlier case posted first, the same body is a new message: the case fails.
    _edit(resent, lambda d: d.pop("after"))
    status, out, _ = _run(capsys, str(TWILIO), "--cases", str(resent), *mode)
    assert status == 1
    assert "1 events ['message SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'], want 0" in out


@pytest.mark.parametrize("after", [["webhooks/nope"], ["send/sms"], "webhooks/inbound_sms"])
def test_after_naming_no_webhook_case_of_the_set_is_reported(
    after: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = Path(shutil.copytree(TWILIO_CASES, tmp_path / "cases"))
    resent = cases / "webhooks" / "inbound_sms_resent.json"
    _edit(resent, lambda d: d.update({"after": after}))
    status, out, _ = _run(capsys, str(TWILIO), "--cases", str(resent))
    assert status == 1
    assert '"after"' in out
