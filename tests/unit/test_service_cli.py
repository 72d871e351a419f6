"""The CLI commands that talk to a service, run through ``client.cli.main`` against a fake Gateway
on a real grpc.aio server (127.0.0.1, port 0): their output (human and --json) and exit codes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fake_gateway import (
    INVALID_DEFINITION,
    PERMISSION_DENIED,
    RATE_LIMITED,
    RunningGateway,
    running_gateway,
)

from client import sender
from client.cli import main
from msgbridge.v1 import gateway_pb2


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    with running_gateway() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway.fake.reset()
    monkeypatch.delenv("MSGBRIDGE_TARGET", raising=False)
    monkeypatch.delenv("MSGBRIDGE_TOKEN", raising=False)


@pytest.fixture
def run(gateway: RunningGateway, capsys: pytest.CaptureFixture[str]) -> Iterator[RunCommand]:
    yield RunCommand(gateway, capsys)


class RunCommand:
    """``run("send", "--org", …)``: main() with --target pointing at the fake, output captured."""

    def __init__(self, gateway: RunningGateway, capsys: pytest.CaptureFixture[str]) -> None:
        self.gateway = gateway
        self.capsys = capsys

    def __call__(self, command: str, *arguments: str) -> tuple[int, str, str]:
        code = main([command, *arguments, "--target", self.gateway.target])
        out, err = self.capsys.readouterr()
        return code, out, err


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


# -- integrations ---------------------------------------------------------------------------------


def test_register_prints_the_stored_integration(
    run: RunCommand, gateway: RunningGateway, tmp_path: Path
) -> None:
    definition = tmp_path / "acme.json"
    definition.write_text('{"name": "Acme ✓"}', encoding="utf-8")

    code, out, err = run("register", str(definition))

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Registered acme version 1 (Acme SMS)"
    assert "properties:    api_key (secret, required), account" in lines
    assert "warning: /logo: not a URL" in lines
    (request,) = gateway.fake.requests("RegisterIntegration")
    assert request.definition_json == '{"name": "Acme ✓"}'
    assert request.validate_only is False


def test_register_validate_only_as_json(
    run: RunCommand, gateway: RunningGateway, tmp_path: Path
) -> None:
    definition = tmp_path / "acme.json"
    definition.write_text("{}", encoding="utf-8")

    code, out, _ = run("register", str(definition), "--validate-only", "--json")

    assert code == 0
    reply = json.loads(out)
    assert reply["validateOnly"] is True
    assert reply["integration"]["id"] == "acme"
    assert reply["integration"]["version"] == "0"  # int64 in the JSON mapping
    assert gateway.fake.requests("RegisterIntegration")[0].validate_only is True


def test_register_an_unreadable_file_is_a_usage_error(
    run: RunCommand, gateway: RunningGateway, tmp_path: Path
) -> None:
    code, out, err = run("register", str(tmp_path / "missing.json"))

    assert (code, out) == (2, "")
    assert "cannot read" in err and "missing.json" in err
    assert gateway.fake.calls == []


def test_register_failure_prints_each_field_violation(
    run: RunCommand, gateway: RunningGateway, tmp_path: Path
) -> None:
    gateway.fake.fail("RegisterIntegration", INVALID_DEFINITION)
    definition = tmp_path / "bad.json"
    definition.write_text("{}", encoding="utf-8")

    code, out, err = run("register", str(definition), "--json")

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "INVALID_ARGUMENT: INVALID_DEFINITION: the definition has 2 errors",
        "/API/SendMessage/request_url: must be an absolute URL",
        "/properties/0: a property needs a name",
    ]


def test_integrations_lists_every_page(run: RunCommand) -> None:
    code, out, _ = run("integrations")
    json_code, json_out, _ = run("integrations", "--json")

    assert code == json_code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "VERSION", "NAME", "INSTALLATIONS", "CAPABILITIES"]
    assert [row.split()[0] for row in rows] == ["acme", "beta", "gamma"]
    assert "send_message, inbound_sms, auth Basic" in rows[0]
    assert [item["id"] for item in json_lines(json_out)] == ["acme", "beta", "gamma"]


def test_integration_shows_the_property_form(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run("integration", "beta", "--version", "2")

    assert code == 0
    assert "id:             beta" in out
    assert "version:        2" in out
    assert "properties:" in out
    assert "api_key  yes     yes" in out
    assert gateway.fake.requests("GetIntegration")[0].version == 2


def test_delete_integration_force(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run("delete-integration", "acme", "--force")

    assert code == 0
    assert out == "Deleted integration acme; 2 installation(s) disabled\n"
    assert gateway.fake.requests("DeleteIntegration")[0].force is True


# -- installations --------------------------------------------------------------------------------

ENABLE = (
    "--org",
    "acme",
    "--integration",
    "acme",
    "--property",
    "api_key=pa=ss=word",
    "--property",
    "account=AC1",
    "--number",
    "+15550001111=101, 102",
    "--number",
    "SHORTCODE",
    "--region",
    "US",
)


def test_enable_sends_properties_split_at_the_first_equals_and_numbers(
    run: RunCommand, gateway: RunningGateway
) -> None:
    code, out, _ = run("enable", *ENABLE)

    assert code == 0
    (request,) = gateway.fake.requests("EnableIntegration")
    assert dict(request.properties) == {"api_key": "pa=ss=word", "account": "AC1"}
    assert [(n.number, list(n.users)) for n in request.numbers] == [
        ("+15550001111", ["101", "102"]),
        ("SHORTCODE", []),
    ]
    assert (request.org_id, request.integration_id, request.default_region) == (
        "acme",
        "acme",
        "US",
    )
    assert "webhook url:   https://gw.example/webhooks/acme/tok-inst-1" in out
    assert "  api_key = (secret, set)" in out
    assert "  account = AC1" in out
    assert "  +15550001111 → 101, 102" in out
    assert "pa=ss=word" not in out


def test_enable_json_prints_the_installation_with_its_webhook_url(run: RunCommand) -> None:
    code, out, _ = run("enable", *ENABLE, "--json")

    assert code == 0
    installation = json.loads(out)
    assert installation["webhookUrl"] == "https://gw.example/webhooks/acme/tok-inst-1"
    assert installation["id"] == "inst-1"
    secret = next(p for p in installation["properties"] if p["name"] == "api_key")
    assert secret == {"name": "api_key", "value": "", "secret": True, "set": True}
    assert "pa=ss=word" not in out


@pytest.mark.parametrize("bad", ["--property=novalue", "--property==x", "--number= =1"])
def test_malformed_pairs_are_usage_errors(
    run: RunCommand, gateway: RunningGateway, bad: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        run("enable", "--org", "acme", "--integration", "acme", bad)

    assert caught.value.code == 2
    assert gateway.fake.calls == []


def test_a_property_given_twice_is_a_usage_error(run: RunCommand, gateway: RunningGateway) -> None:
    code, _, err = run(
        "enable", "--org", "a", "--integration", "b", "--property", "x=1", "--property", "x=2"
    )

    assert code == 2
    assert "'x' given twice" in err
    assert gateway.fake.calls == []


def test_update_installation(run: RunCommand, gateway: RunningGateway) -> None:
    code, _, _ = run(
        "update-installation", "inst-1", "--property", "account=AC2", "--clear-property", "old"
    )
    numbers_code, _, _ = run("update-installation", "inst-1", "--no-numbers", "--region", "GB")
    nothing_code, _, nothing_err = run("update-installation", "inst-1")

    assert (code, numbers_code, nothing_code) == (0, 0, 2)
    assert "nothing to update" in nothing_err
    keep, replace = gateway.fake.requests("UpdateInstallation")
    assert dict(keep.properties) == {"account": "AC2"}
    assert list(keep.clear_properties) == ["old"]
    assert keep.set_numbers is False and not keep.HasField("default_region")
    assert replace.set_numbers is True and list(replace.numbers) == []
    assert replace.default_region == "GB"


def test_installations_table_and_filters(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run("installations", "--org", "acme", "--integration", "acme")
    json_code, json_out, _ = run("installations", "--json")

    assert code == json_code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "ORG", "INTEGRATION", "ENABLED", "SUBSCRIPTION", "NUMBERS"]
    assert [row.split()[:4] for row in rows] == [
        ["inst-1", "acme", "acme", "yes"],
        ["inst-2", "other", "beta", "no"],
    ]
    assert [item["enabled"] for item in json_lines(json_out)] == [True, False]
    first = gateway.fake.requests("ListInstallations")[0]
    assert (first.org_id, first.integration_id) == ("acme", "acme")


def test_installation_disable_and_retry_subscription(run: RunCommand) -> None:
    shown = run("installation", "inst-4")
    disabled = run("disable", "inst-4", "--json")
    retried = run("retry-subscription", "inst-4")

    assert [result[0] for result in (shown, disabled, retried)] == [0, 0, 0]
    assert "installation:  inst-4" in shown[1]
    assert "region:        US" in shown[1]
    assert "subscription:  subscribed (1 attempt)" in shown[1]
    assert json.loads(disabled[1])["enabled"] is False
    assert "installation:  inst-4" in retried[1]


# -- sending --------------------------------------------------------------------------------------

SEND = ("--org", "acme", "--from", "+15550001111", "--to", "+15550002222", "--text", "hi ✓")


def test_send_json_prints_the_reply_with_the_provider_message_id(
    run: RunCommand, gateway: RunningGateway
) -> None:
    code, out, _ = run(
        "send", *SEND, "--metadata", "ticket=4=2", "--idempotency-key", "k1", "--json"
    )

    assert code == 0
    reply = json.loads(out)
    assert reply["providerMessageId"] == "SM123"
    assert reply["messageId"] == "msg-1"
    (request,) = gateway.fake.requests("SendMessage")
    assert sender(request) == "+15550001111"
    assert (request.to, request.text, request.idempotency_key) == ("+15550002222", "hi ✓", "k1")
    assert dict(request.metadata) == {"ticket": "4=2"}


def test_send_carries_quick_replies_a_template_and_reply_to(
    run: RunCommand, gateway: RunningGateway
) -> None:
    code, _, err = run(
        "send",
        *SEND[:6],
        "--reply",
        "yes:Yes",
        "--reply",
        "later:Later:in an hour: or two",
        "--template",
        "order_update",
        "--language",
        "en_US",
        "--param",
        "Ann",
        "--param",
        "#42",
        "--reply-to",
        "wamid.IN1",
    )

    assert (code, err) == (0, "")
    (request,) = gateway.fake.requests("SendMessage")
    assert request.text == ""
    assert [(r.id, r.title, r.description) for r in request.replies] == [
        ("yes", "Yes", ""),
        ("later", "Later", "in an hour: or two"),
    ]
    template = request.template
    assert (template.name, template.language, list(template.parameters)) == (
        "order_update",
        "en_US",
        ["Ann", "#42"],
    )
    assert request.reply_to == "wamid.IN1"


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ((), "--text is required"),
        (("--text", "x", "--param", "Ann"), "--param need --template"),
    ],
)
def test_send_usage_mistakes_of_rich_parts(
    run: RunCommand, gateway: RunningGateway, arguments: tuple[str, ...], words: str
) -> None:
    code, _, err = run("send", *SEND[:6], *arguments)

    assert code == 2
    assert words in err
    assert not gateway.fake.requests("SendMessage")


def test_send_file_carries_its_kind_and_reply_to(run: RunCommand, gateway: RunningGateway) -> None:
    code, _, err = run(
        "send-file",
        *SEND[:6],
        "--url",
        "https://files.example/a",
        "--kind",
        "document",
        "--reply-to",
        "m-1",
    )

    assert (code, err) == (0, "")
    (request,) = gateway.fake.requests("SendFile")
    assert (request.media_kind, request.reply_to) == ("document", "m-1")


def test_send_human_line(run: RunCommand) -> None:
    code, out, _ = run("send", *SEND, "--idempotency-key", "used")

    assert code == 0
    assert out == (
        "Sent msg-1 through acme (installation inst-1): provider id SM123, HTTP 201, 1 attempt;"
        " replayed: the idempotency key was used before\n"
    )


def test_send_failure_prints_the_code_and_reason_on_stderr(
    run: RunCommand, gateway: RunningGateway
) -> None:
    gateway.fake.fail("SendMessage", PERMISSION_DENIED)

    code, out, err = run("send", *SEND)

    assert (code, out) == (1, "")
    assert err == (
        "PERMISSION_DENIED: NUMBER_NOT_IN_INSTALLATION: +15559999999 is not a number of the"
        " organisation's installations (integration=acme)\n"
    )


def test_rate_limited_failure_shows_the_retry_delay(
    run: RunCommand, gateway: RunningGateway
) -> None:
    gateway.fake.fail("SendFile", RATE_LIMITED)

    code, _, err = run("send-file", *SEND[:6], "--url", "https://files.example/a.png")

    assert code == 1
    assert err.splitlines()[0].startswith("RESOURCE_EXHAUSTED: PROVIDER_RATE_LIMITED: ")
    assert "retry after: 7.5s" in err.splitlines()


def test_send_file(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run(
        "send-file",
        *SEND[:6],
        "--url",
        "https://files.example/a.png",
        "--text",
        "look",
        "--media-type",
        "image/png",
        "--filename",
        "a.png",
    )
    json_code, json_out, _ = run("send-file", *SEND[:6], "--url", "u", "--json")

    assert code == json_code == 0
    assert "provider id unknown, HTTP 202, 2 attempts" in out
    assert "providerMessageId" not in json.loads(json_out)  # unset, not ""
    request = gateway.fake.requests("SendFile")[0]
    assert (request.media_url, request.text, request.media_type, request.filename) == (
        "https://files.example/a.png",
        "look",
        "image/png",
        "a.png",
    )


def test_message(run: RunCommand) -> None:
    code, out, _ = run("message", "msg-7")

    assert code == 0
    assert "message:          msg-7" in out
    assert "state:            delivered" in out
    assert "from:             +15550001111" in out
    assert "metadata:         ticket=42" in out


# -- events ---------------------------------------------------------------------------------------


def test_events_lists_the_stored_events_and_exits(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run("events")

    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3", "#4", "#5"]
    assert lines[0] == (
        "#1  2026-09-21T14:13:20+00:00  message  org=acme  +15550001111 -> +15550002222"
        "  users=101,102  'hello'"
    )
    assert "messageDelivered" in lines[2] and "message=msg-1" in lines[2]
    assert {call.method for call in gateway.fake.calls} == {"ListEvents"}


def test_events_json_filters_one_event_per_line(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run(
        "events", "--after", "1", "--type", "message", "--type", "messageDelivered", "--json"
    )

    assert code == 0
    events = json_lines(out)
    assert [(e["cursor"], e["type"]) for e in events] == [
        ("3", "MESSAGE_DELIVERED"),
        ("4", "MESSAGE"),
    ]
    request = gateway.fake.requests("ListEvents")[0]
    assert request.after_cursor == 1
    assert list(request.types) == [gateway_pb2.Event.MESSAGE, gateway_pb2.Event.MESSAGE_DELIVERED]


def test_events_follow_streams_and_acknowledges_each_batch(
    run: RunCommand, gateway: RunningGateway
) -> None:
    gateway.fake.refuse_streams_after = 1
    code, out, err = run("events", "--follow", "--earliest", "--consumer", "core", "--org", "acme")

    assert code == 1  # the second stream was refused: an error no reconnection mends
    assert [line.split()[0] for line in out.splitlines()] == ["#1", "#2", "#3", "#5"]
    assert "the stream ended" in err and "reconnected; resuming after cursor 5" in err
    assert "PERMISSION_DENIED" in err
    stream, again = gateway.fake.requests("StreamEvents")
    assert stream.WhichOneof("start") == "earliest"
    assert (stream.consumer, stream.org_id) == ("core", "acme")
    # A consumer resumes where the server keeps it: after its last acknowledged event.
    assert (again.consumer, again.org_id) == ("core", "acme")
    acks = gateway.fake.requests("AckEvents")
    assert [(a.consumer, list(a.cursors)) for a in acks] == [("core", [1, 2]), ("core", [3, 5])]


def test_events_follow_after_a_cursor_without_consumer_acknowledges_nothing(
    run: RunCommand, gateway: RunningGateway
) -> None:
    gateway.fake.refuse_streams_after = 2
    code, out, err = run("events", "--follow", "--after", "0", "--json")

    assert code == 1
    assert [e["cursor"] for e in json_lines(out)] == ["1", "2", "3", "4", "5"]
    stream, resumed, _ = gateway.fake.requests("StreamEvents")
    assert stream.WhichOneof("start") == "after_cursor"
    assert (resumed.WhichOneof("start"), resumed.after_cursor) == ("after_cursor", 5)
    assert err.count("reconnected; resuming after cursor 5") == 2
    assert gateway.fake.requests("AckEvents") == []


def test_events_usage_errors(run: RunCommand, gateway: RunningGateway) -> None:
    code, _, err = run("events", "--consumer", "core")
    assert code == 2 and "--follow" in err
    with pytest.raises(SystemExit) as both:
        run("events", "--after", "3", "--earliest")
    with pytest.raises(SystemExit) as unknown_type:
        run("events", "--type", "delivered")

    assert both.value.code == unknown_type.value.code == 2
    assert gateway.fake.calls == []


# -- unmatched webhooks, health -------------------------------------------------------------------


def test_unmatched_and_replay(run: RunCommand, gateway: RunningGateway) -> None:
    code, out, _ = run("unmatched", "--integration", "acme")
    json_code, json_out, _ = run("unmatched", "--json")
    replayed = run("replay", "wh-1")
    still = run("replay", "wh-2")

    assert code == json_code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "INTEGRATION"]
    assert [row.split()[:2] for row in rows] == [["wh-1", "unmatched"], ["wh-2", "unmatched"]]
    assert rows[0].endswith("no webhook model matched")
    assert [w["kind"] for w in json_lines(json_out)] == ["UNMATCHED", "UNMATCHED"]
    assert gateway.fake.requests("ListUnmatchedWebhooks")[0].integration_id == "acme"
    assert replayed[1].splitlines()[0] == "Replayed wh-1: 1 event"
    assert replayed[1].splitlines()[1].startswith("#1  ")
    assert still[1] == "Replayed wh-2: still no event: still no webhook model matched\n"


def test_health(run: RunCommand) -> None:
    assert run("health") == (0, "SERVING\n", "")
    assert run("health", "--service", "down") == (1, "NOT_SERVING\n", "")
    code, out, _ = run("health", "--json")
    assert (code, json.loads(out)) == (0, {"status": "SERVING"})


# -- connection options ---------------------------------------------------------------------------


def test_target_and_token_come_from_the_environment(
    gateway: RunningGateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSGBRIDGE_TARGET", gateway.target)
    monkeypatch.setenv("MSGBRIDGE_TOKEN", "env-token")

    assert main(["installation", "inst-1"]) == 0
    assert main(["installation", "inst-1", "--token", "flag-token"]) == 0

    tokens = [call.metadata.get("authorization") for call in gateway.fake.calls]
    assert tokens == ["Bearer env-token", "Bearer flag-token"]
    out = capsys.readouterr().out
    assert "env-token" not in out and "flag-token" not in out


def test_an_unreachable_service_fails_with_unavailable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    code = main(["integrations", "--target", f"127.0.0.1:{port}", "--timeout", "5"])

    assert code == 1
    assert capsys.readouterr().err.startswith("UNAVAILABLE")


def test_tls_options_are_checked_before_connecting(
    run: RunCommand, gateway: RunningGateway, tmp_path: Path
) -> None:
    half = run("health", "--cert", str(tmp_path / "c.pem"))
    missing = run("health", "--ca", str(tmp_path / "ca.pem"))

    assert half[0] == missing[0] == 2
    assert "--cert and --key go together" in half[2]
    assert "cannot read" in missing[2] and "ca.pem" in missing[2]
    assert gateway.fake.calls == []


# -- numeric options: range-checked, a usage error rather than a traceback -----------------------

INT64_OVER = str(2**63)  # one past an int64 cursor or version
INT32_OVER = str(2**31)  # one past an int32 page size


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["events", "--after", INT64_OVER], "argument --after: a cursor must be from 0 to"),
        (["events", "--after", "-1"], "argument --after: a cursor must be from 0 to"),
        (["events", "--after", "1e3"], "a cursor must be a whole number, got '1e3'"),
        (["events", "--after", "9" * 5000], "a cursor must be a whole number"),
        (["events", "--page-size", INT32_OVER], "argument --page-size: the page size must be"),
        (["events", "--follow", "--page-size", "0"], "the page size must be from 1 to"),
        (["integrations", "--page-size", INT32_OVER], "the page size must be from 1 to"),
        (["installations", "--page-size", "-5"], "the page size must be from 1 to"),
        (["unmatched", "--page-size", "99999999999999999999"], "the page size must be"),
        (["integration", "acme", "--version", INT64_OVER], "argument --version: a version"),
        (["health", "--timeout", "inf"], "argument --timeout: the timeout must be more than 0"),
        (["health", "--timeout", "nan"], "the timeout must be more than 0"),
        (["health", "--timeout", "1e300"], "the timeout must be more than 0"),
        (["health", "--timeout", "0"], "the timeout must be more than 0"),
        (["sidecar", "--core", "x:1", "--max-body", INT32_OVER], "the largest body must be"),
        (["sidecar", "--core", "x:1", "--max-body", "0"], "the largest body must be"),
        (["sidecar", "--core", "x:1", "--timeout", "inf"], "the receive timeout must be"),
        (["sidecar", "--core", "x:1", "--core-timeout", "-1"], "the core timeout must be"),
        (["sidecar", "--core", "x:1", "--core-timeout", "soon"], "seconds expected, got 'soon'"),
    ],
)
def test_numeric_options_out_of_range_are_usage_errors(
    gateway: RunningGateway,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    complaint: str,
) -> None:
    target = [] if arguments[0] == "sidecar" else ["--target", gateway.target]
    with pytest.raises(SystemExit) as exit_:
        main([*arguments, *target])

    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"msgbridge {arguments[0]}: error: " in err and complaint in err
    assert "Traceback" not in err
    assert gateway.fake.calls == []


def test_numeric_options_at_their_limits_reach_the_service(
    run: RunCommand, gateway: RunningGateway
) -> None:
    int64_max, int32_max = str(2**63 - 1), str(2**31 - 1)

    assert run("events", "--after", int64_max, "--page-size", int32_max)[0] == 0
    gateway.fake.refuse_streams_after = 1  # the follower ends on the second stream, refused
    assert run("events", "--follow", "--after", "0", "--page-size", "7")[0] == 1
    assert run("integration", "acme", "--version", int64_max, "--timeout", "31536000")[0] == 0
    assert run("integrations", "--page-size", "1")[0] == 0
    assert run("installations", "--page-size", "3")[0] == 0
    assert run("unmatched", "--page-size", "4")[0] == 0

    listed = gateway.fake.requests("ListEvents")[0]
    assert (listed.after_cursor, listed.page_size) == (2**63 - 1, 2**31 - 1)
    assert gateway.fake.requests("StreamEvents")[0].max_batch == 7
    assert gateway.fake.requests("GetIntegration")[0].version == 2**63 - 1
    assert {r.page_size for r in gateway.fake.requests("ListIntegrations")} == {1}
    assert {r.page_size for r in gateway.fake.requests("ListInstallations")} == {3}
    assert {r.page_size for r in gateway.fake.requests("ListUnmatchedWebhooks")} == {4}


# -- one --json convention: JSON Lines ------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["integration", "acme"],
        ["installation", "inst-4"],
        ["send", *SEND],
        ["message", "msg-7"],
        ["health"],
        ["integrations"],
        ["installations"],
        ["events"],
    ],
    ids=lambda arguments: arguments[0],
)
def test_json_prints_one_object_per_line_for_results_and_listings(
    run: RunCommand, gateway: RunningGateway, arguments: list[str]
) -> None:
    code, out, err = run(*arguments, "--json")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
