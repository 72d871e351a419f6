"""``msgbridge check``: lint output and exit codes, --render and --match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.cli import main

DEFINITIONS = Path(__file__).resolve().parents[1] / "fixtures" / "definitions"
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = str(ROOT / "integrations" / "template.json")
SEED = sorted((DEFINITIONS / "seed").glob("*.json"))
EXTENDED = sorted((DEFINITIONS / "extended").glob("*.json"))
BROKEN = json.loads((DEFINITIONS / "broken" / "expected.json").read_text(encoding="utf-8"))
NOT_JSON = {"01_invalid_json.json", "02_nan_literal.json"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def seed_with_webhooks(*models: dict[str, Any]) -> dict[str, Any]:
    """The seed's complete example with ``models`` as its webhook models."""
    doc: dict[str, Any] = json.loads((DEFINITIONS / "seed" / "complete_example.json").read_text())
    doc["Webhook"] = list(models)
    return doc


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


# -- msgbridge check FILE... ---------------------------------------------------------------------


def test_the_seed_and_the_template_pass(capsys: pytest.CaptureFixture[str]) -> None:
    files = [TEMPLATE, *map(str, SEED), *map(str, EXTENDED)]
    code, out, err = run(capsys, *files)
    assert (code, out) == (0, "")
    assert err.splitlines() == [f"{file}: ok" for file in files]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_file_prints_its_problem_at_its_pointer(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    expected = BROKEN[name]
    file = str(DEFINITIONS / "broken" / name)
    code, out, _ = run(capsys, file)
    where = f"{file}:{expected['pointer']}" if expected["pointer"] else file
    prefix = f"{where}: warning: " if expected["severity"] == "warning" else f"{where}: "
    assert any(
        line.startswith(prefix) and expected["message"] in line for line in out.splitlines()
    ), out
    if expected["severity"] == "warning":
        assert code == 0
    else:
        assert code == (2 if name in NOT_JSON else 1)


def test_every_problem_is_one_line_errors_first_by_pointer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = json.loads((DEFINITIONS / "seed" / "complete_example.json").read_text())
    doc["properties"].append("Unused")
    doc["Webhooks"] = doc.pop("Webhook")
    doc["auth"]["type"] = "bearer"
    file = write(tmp_path, "x.json", doc)
    code, out, err = run(capsys, file)
    assert code == 1
    assert out.splitlines() == [
        f'{file}:/Webhooks: unknown key "Webhooks"; did you mean "Webhook"?',
        f'{file}:/auth/type: type must be "Basic", "Bearer", "Header", "JWT" or "Token", '
        'not "bearer" (did you mean "Bearer"?)',
        f'{file}:/properties/1: warning: property "Unused" is declared but never used '
        "(no $Unused$ in the file)",
    ]
    assert err == f"{file}: 2 errors, 1 warning\n"


def test_exit_codes_unreadable_beats_errors_beats_clean(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = str(DEFINITIONS / "broken" / "12_unknown_placeholder.json")
    missing = str(tmp_path / "missing.json")
    assert run(capsys, TEMPLATE)[0] == 0
    assert run(capsys, TEMPLATE, broken)[0] == 1
    code, out, _ = run(capsys, broken, missing, TEMPLATE)
    assert code == 2
    assert f"{missing}: cannot read: No such file or directory" in out.splitlines()
    assert run(capsys, str(tmp_path))[0] == 2  # a directory is unreadable too
    assert run(capsys, write(tmp_path, "latin1.json", b'{"id": "\xe9"}'))[0] == 2
    code, out, _ = run(capsys, write(tmp_path, "text.json", "not json at all"))
    assert code == 2
    assert out.startswith(f"{tmp_path / 'text.json'}: the definition is not valid JSON")


def test_json_output_lists_every_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = str(DEFINITIONS / "broken" / "47_unknown_auth_key.json")
    missing = str(tmp_path / "missing.json")
    code, out, err = run(capsys, "--json", TEMPLATE, broken, missing)
    assert (code, err) == (2, "")
    # JSON Lines, as every command's --json: an object per problem.
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "file": broken,
            "pointer": "/auth",
            "severity": "error",
            "message": 'auth is missing the required key "token"',
        },
        {
            "file": broken,
            "pointer": "/auth/tokne",
            "severity": "error",
            "message": 'unknown key "tokne"; did you mean "token"?',
        },
        {
            "file": broken,
            "pointer": "/properties/0",
            "severity": "warning",
            "message": 'property "API key" is declared but never used (no $API key$ in the file)',
        },
        {
            "file": missing,
            "pointer": "",
            "severity": "error",
            "message": "cannot read: No such file or directory",
        },
    ]
    code, out, _ = run(capsys, "--json", TEMPLATE)
    assert (code, out) == (0, "")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--render", TEMPLATE],
        ["--match", TEMPLATE],
        ["--render", TEMPLATE, "--vars", TEMPLATE, "--webhook", TEMPLATE],
        ["--render", TEMPLATE, "--vars", TEMPLATE, TEMPLATE],
        [TEMPLATE, "--vars", TEMPLATE],
    ],
)
def test_usage_mistakes_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("msgbridge check: error: ")


# -- --render ------------------------------------------------------------------------------------

SEND_VARS = {
    "from": "+61855555555",
    "to": "+61123456789",
    "content": 'Hello "there" $to$ 💬',
    "extension": "100",
    "domain": "acme.example",
    "API key": "sk_live_secret",
    "Username": "alice",
    "Password": "pw-secret",
    "Server": "ns.example.com",
    "Domain": "acme",
    "webhook_url": "https://gw.example/webhooks/abc",
}


def test_render_shows_the_exact_send_message_request_with_secrets_masked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vars_file = write(tmp_path, "vars.json", SEND_VARS)
    code, out, err = run(capsys, "--render", TEMPLATE, "--vars", vars_file)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "POST https://api.example.com/messages"
    assert lines[1] == "Content-Type: application/json"
    assert lines[2].startswith("Authorization: Bearer ")
    assert lines[3] == ""
    assert json.loads("\n".join(lines[4:])) == {
        "from": "+61855555555",
        "to": "+61123456789",
        "content": 'Hello "there" $to$ 💬',
    }
    assert "sk_live_secret" not in out


def test_render_as_json_and_other_requests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vars_file = write(tmp_path, "vars.json", {**SEND_VARS, "text": None, "tags": ["a", "b"]})
    basic = str(DEFINITIONS / "seed" / "fragments_basic.json")
    code, out, _ = run(capsys, "--render", basic, "--vars", vars_file, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["file"] == basic
    [request] = result["requests"]
    assert (request["request"], request["method"], request["url"]) == (
        "/API/SendMessage",
        "POST",
        "https://api.example.com/webhook",
    )
    headers = dict(request["headers"])
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"].startswith("Basic ")
    assert "pw-secret" not in out and "alice" not in out
    assert json.loads(request["body"])["extension"] == "100"

    code, out, _ = run(capsys, "--render", basic, "--vars", vars_file, "--request", "SendFile")
    assert code == 0
    assert json.loads(out.split("\n\n", 1)[1])["media_url"] == 'Hello "there" $to$ 💬'

    code, out, _ = run(capsys, "--render", basic, "--vars", vars_file, "--request", "Subscribe")
    assert code == 0
    assert out.splitlines()[0].startswith("POST https://")
    assert out.splitlines()[0].endswith("/ns-api/v2/subscriptions")
    assert '"post-url":"https://gw.example/webhooks/abc"' in out.replace(" ", "")

    code, out, _ = run(capsys, "--render", TEMPLATE, "--vars", vars_file, "--request", "Subscribe")
    assert code == 1
    assert out == f"{TEMPLATE}: the definition has no Subscribe request\n"


def test_render_works_for_oauth2_without_a_real_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vars_file = write(tmp_path, "vars.json", SEND_VARS)
    oauth = str(DEFINITIONS / "seed" / "fragments_oauth2.json")
    code, out, _ = run(capsys, "--render", oauth, "--vars", vars_file)
    assert code == 0
    assert any(line.startswith("Authorization: Bearer ") for line in out.splitlines())
    assert "access-token" not in out


def test_render_reports_a_value_that_would_change_the_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vars_file = write(tmp_path, "vars.json", {**SEND_VARS, "Server": "evil.example/x?y="})
    basic = str(DEFINITIONS / "seed" / "fragments_basic.json")
    code, out, _ = run(capsys, "--render", basic, "--vars", vars_file, "--request", "Subscribe")
    assert code == 1
    assert out.startswith(f"{basic}:/Subscribe")
    assert "cannot render /Subscribe: " in out


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        ({"to": 5}, 2, '"to" must be a string, a list of strings or null'),
        (["to"], 2, "must be a JSON object"),
        ("{nope", 2, "is not valid JSON"),
    ],
)
def test_render_refuses_unusable_vars(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: object, code: int, fragment: str
) -> None:
    vars_file = write(tmp_path, "vars.json", content)
    got, out, _ = run(capsys, "--render", TEMPLATE, "--vars", vars_file)
    assert got == code
    assert out.startswith(f"{vars_file}: ") and fragment in out


def test_render_and_match_refuse_a_broken_definition(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = str(DEFINITIONS / "broken" / "12_unknown_placeholder.json")
    not_json = str(DEFINITIONS / "broken" / "01_invalid_json.json")
    body = write(tmp_path, "body.json", {})
    code, out, _ = run(capsys, "--render", broken, "--vars", body)
    assert code == 1 and out.startswith(f"{broken}:/API/SendMessage/request_parameters/to: ")
    code, out, _ = run(capsys, "--match", broken, "--webhook", body, "--json")
    first = json.loads(out.splitlines()[0])
    assert code == 1 and first["pointer"] == "/API/SendMessage/request_parameters/to"
    assert run(capsys, "--match", not_json, "--webhook", body)[0] == 2
    assert run(capsys, "--render", TEMPLATE, "--vars", str(tmp_path / "none.json"))[0] == 2


# -- --match -------------------------------------------------------------------------------------

SEED_BODIES: list[tuple[dict[str, Any], str, str, dict[str, Any]]] = [
    (
        {
            "method": "message",
            "params": {"from": "+61855555555", "to": "+61123456789", "content": "Hello there!"},
        },
        "message",
        "/Webhook/2",
        {"from": "+61855555555", "to": "+61123456789", "text": "Hello there!"},
    ),
    (
        {
            "method": "file",
            "params": {
                "from": "+61855555555",
                "to": "+61123456789",
                "text": "Sending a file",
                "url": "https://your.server.com/files/8a8d89798as9ud.jpeg",
            },
        },
        "mms",
        "/Webhook/1",
        {
            "from": "+61855555555",
            "to": "+61123456789",
            "text": "Sending a file",
            "media_urls": ["https://your.server.com/files/8a8d89798as9ud.jpeg"],
        },
    ),
    (
        {"method": "delivered", "params": {"messageid": "9612c4e2-27f8-4463-a517-c6306ffdabff"}},
        "messageDelivered",
        "/Webhook/0",
        {"provider_message_id": "9612c4e2-27f8-4463-a517-c6306ffdabff"},
    ),
]


@pytest.mark.parametrize(("body", "event_type", "model", "fields"), SEED_BODIES)
def test_match_shows_the_event_each_seed_body_gives(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    body: dict[str, Any],
    event_type: str,
    model: str,
    fields: dict[str, Any],
) -> None:
    body_file = write(tmp_path, "body.json", body)
    code, out, err = run(capsys, "--match", TEMPLATE, "--webhook", body_file)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f'the body: {event_type} (model {model}, event_key "{body["method"]}")'
    for name, value in fields.items():
        label = {"provider_message_id": "messageid", "media_urls": "media"}.get(name, name)
        shown = " ".join(value) if isinstance(value, list) else value
        assert f"  {label}: {shown}" in lines

    code, out, _ = run(capsys, "--match", TEMPLATE, "--webhook", body_file, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["unmatched"] == []
    [event] = result["events"]
    assert (event["type"], event["model"], event["event_key"]) == (
        event_type,
        model,
        body["method"],
    )
    assert event["payload_pointer"] == ""
    for name, value in fields.items():
        assert event[name] == value


def test_match_explains_why_nothing_matched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    params = {"from": "+61855555555", "to": "+61123456789", "text": "no url"}
    body = {"method": "file", "params": params}
    body_file = write(tmp_path, "body.json", body)
    code, out, _ = run(capsys, "--match", TEMPLATE, "--webhook", body_file)
    assert code == 1
    assert out.startswith("the body: no match: ")
    assert "/Webhook/1" in out
    code, out, _ = run(capsys, "--match", TEMPLATE, "--webhook", body_file, "--json")
    assert code == 1
    result = json.loads(out)
    assert result["events"] == []
    [unmatched] = result["unmatched"]
    assert unmatched["payload_pointer"] == ""
    assert unmatched["reason"]
    closest = unmatched["near_misses"][0]
    assert (closest["model"], closest["event_key"]) == ("/Webhook/1", "file")
    assert "url" in closest["reason"]


def test_match_sniffs_form_bodies_and_honours_method_and_content_type(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = seed_with_webhooks(
        {
            "event_key": "sms",
            "event_type": "message",
            "request_method": "POST",
            "request_parameters": {"From": "$from$", "To": "$to$", "Body": "$content$"},
        },
        {
            "event_key": "status",
            "event_type": "messageDelivered",
            "request_method": "GET",
            "request_parameters": {"id": "$messageid$", "state": "delivered"},
        },
    )
    definition = write(tmp_path, "def.json", doc)
    form = write(tmp_path, "form.txt", "From=%2B15551230000&To=%2B15559870000&Body=hi+there")
    code, out, _ = run(capsys, "--match", definition, "--webhook", form, "--json")
    assert code == 0
    [event] = json.loads(out)["events"]
    assert (event["type"], event["from"], event["text"]) == ("message", "+15551230000", "hi there")

    query = write(tmp_path, "query.txt", "?id=abc-1&state=delivered\n")
    code, out, _ = run(capsys, "--match", definition, "--webhook", query, "--method", "get")
    assert code == 0
    assert (
        out.splitlines()[0] == 'the body: messageDelivered (model /Webhook/1, event_key "status")'
    )
    assert "  messageid: abc-1" in out.splitlines()

    code, out, _ = run(capsys, "--match", definition, "--webhook", form, "--method", "PUT")
    assert code == 1 and "no match" in out

    broken = write(tmp_path, "broken.json", '{"From": ')
    code, out, _ = run(
        capsys, "--match", definition, "--webhook", broken, "--content-type", "application/json"
    )
    assert code == 2
    assert out.startswith(f"{broken}: cannot be parsed: ")
    assert run(capsys, "--match", definition, "--webhook", str(tmp_path / "none"))[0] == 2


def test_match_with_headers_a_model_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = seed_with_webhooks(
        {
            "event_key": "sms",
            "event_type": "message",
            "request_method": "POST",
            "request_parameters": {"from": "$from$", "to": "$to$", "message": "$content$"},
            "request_headers": {"X-Sms-Guid": "$messageid$"},
        }
    )
    definition = write(tmp_path, "def.json", doc)
    form = write(tmp_path, "form.txt", "from=6467052267&to=6578330000&message=hi")
    code, out, _ = run(capsys, "--match", definition, "--webhook", form)
    assert code == 1 and "header X-Sms-Guid: missing" in out

    args = ["--match", definition, "--webhook", form, "--json", "--header", "x-sms-guid: 4ed4"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    [event] = json.loads(out)["events"]
    assert event["provider_message_id"] == "4ed4"

    code, _, err = run(capsys, "--match", definition, "--webhook", form, "--header", "no colon")
    assert code == 2 and "write it as 'Name: value'" in err
    code, _, err = run(capsys, definition, "--header", "X-A: b")
    assert code == 2 and "--header goes with --match" in err


def test_match_sniffs_xml_bodies_and_render_shows_an_xml_body(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    esendex = str(ROOT / "integrations" / "esendex.json")
    body = write(
        tmp_path,
        "inbound.xml",
        "<InboundMessage><MessageId>m1</MessageId><From>447700900001</From>"
        "<To>447700900002</To><MessageText>Hi &amp; bye</MessageText></InboundMessage>",
    )
    code, out, _ = run(capsys, "--match", esendex, "--webhook", body, "--json")
    assert code == 0
    [event] = json.loads(out)["events"]
    assert (event["type"], event["text"], event["from"]) == ("message", "Hi & bye", "447700900001")

    bomb = write(tmp_path, "bomb.xml", '<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>')
    code, out, _ = run(capsys, "--match", esendex, "--webhook", bomb)
    assert code == 2 and "the body is not acceptable XML: a DTD" in out

    variables = write(
        tmp_path,
        "vars.json",
        {"from": "+447700900123", "to": "+447815777555", "content": "a & b <c>"}
        | {"Username": "u", "Password": "p", "Account reference": "EX0000000"},
    )
    code, out, _ = run(capsys, "--render", esendex, "--vars", variables)
    assert code == 0
    assert "<body>a &amp; b &lt;c&gt;</body>" in out


def test_render_shows_every_request_a_send_makes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """(ext) docs/format.md, "Several requests per send": each planned request, in order."""
    commio = str(Path(__file__).parents[2] / "integrations" / "commio.json")
    variables = {
        "from": "+12065551212",
        "to": "+12067791234",
        "content": "https://foo.bar/a.jpg",
        "media_urls": ["https://foo.bar/a.jpg", "https://foo.bar/b.jpg"],
        "text": "My pic!",
        "Account ID": "1234",
        "Username": "u",
        "API Token": "t",
    }
    vars_file = write(tmp_path, "vars.json", variables)
    code, out, _ = run(
        capsys, "--render", commio, "--vars", vars_file, "--request", "SendFile", "--json"
    )
    assert code == 0
    requests = json.loads(out)["requests"]
    assert [(r["request"], r["url"].rsplit("/", 2)[-2]) for r in requests] == [
        ("/API/SendFile", "mms"),
        ("/API/SendFile", "mms"),
        ("/API/SendFile/then", "sms"),
    ]
    assert json.loads(requests[2]["body"])["message"] == "My pic!"

    too_long = write(tmp_path, "long.json", {**variables, "content": "x" * 40_000})
    code, out, _ = run(capsys, "--render", commio, "--vars", too_long)
    assert code == 1
    assert "at most 16" in out


def test_render_leaves_out_a_step_its_only_if_skips(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # (ext) docs/format.md, "Look up before create": BulkSMS updates a webhook it found, else
    # creates it; with --vars naming the received webhook's id, that one is updated
    bulksms = str(ROOT / "integrations" / "bulksms.json")
    properties = {"Token ID": "id", "Token Secret": "pw-secret", "Webhook name": "msgbridge"}
    found = {**properties, "webhook_url": "https://gw.example/w", "received_webhook_id": "7"}
    vars_file = write(tmp_path, "vars.json", found)
    code, out, _ = run(capsys, "--render", bulksms, "--vars", vars_file, "--request", "Subscribe")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith(("GET ", "POST "))] == [
        "GET https://api.bulksms.com/v1/webhooks",
        "POST https://api.bulksms.com/v1/webhooks/7",  # received: found, updated
        "POST https://api.bulksms.com/v1/webhooks",  # sent: not found, created
    ]
    code, out, _ = run(capsys, "--render", bulksms, "--vars", vars_file, "--request", "Unsubscribe")
    assert code == 0
    assert out.splitlines()[0] == "DELETE https://api.bulksms.com/v1/webhooks/7"
    assert "DELETE https://api.bulksms.com/v1/webhooks/\n" not in out + "\n"


def test_render_derives_each_files_media_kind_unless_the_vars_give_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = json.loads(Path(TEMPLATE).read_text())
    doc["API"]["SendFile"].update(
        for_each="media",
        request_url="https://api.example.com/$media_kind|map:image=photo,video=video$",
        request_parameters={"to": "$to$", "url": "$content$", "kind": "$media_kind$"},
    )
    definition = write(tmp_path, "kinds.json", doc)
    urls = ["https://x/a", "https://x/b.mp4", "https://x/c.pdf"]
    call = {"from": "+1555", "to": "+1666", "API key": "k", "media_type": "image/png"}
    vars_file = write(tmp_path, "vars.json", {**call, "media_urls": urls})
    code, out, _ = run(capsys, "--render", definition, "--vars", vars_file, "--request", "SendFile")
    assert code == 0
    requests = out.split("\n\n")
    assert [r.splitlines()[0] for r in requests[::2]] == [
        "POST https://api.example.com/photo",
        "POST https://api.example.com/video",
        "POST https://api.example.com/document",
    ]
    assert [json.loads(r)["kind"] for r in requests[1::2]] == ["image", "video", "document"]

    kinds = {**call, "media_urls": urls[:1], "media_kinds": ["video"]}
    given = write(tmp_path, "given.json", kinds)
    code, out, _ = run(capsys, "--render", definition, "--vars", given, "--request", "SendFile")
    assert (code, out.splitlines()[0]) == (0, "POST https://api.example.com/video")


def test_render_counts_the_quick_replies_the_vars_give(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = json.loads(Path(TEMPLATE).read_text())
    doc["API"]["SendMessage"]["request_parameters"] = {
        "n": "$reply_count$",
        "b": {"$each": "replies", "item": {"id": "$reply_id$", "title": "$reply_title$"}},
    }
    definition = write(tmp_path, "replies.json", doc)
    call = {"from": "+1555", "to": "+1666", "API key": "k"}
    vars_file = write(
        tmp_path, "vars.json", {**call, "reply_ids": ["y", "n"], "reply_titles": ["Yes", "No"]}
    )
    code, out, _ = run(capsys, "--render", definition, "--vars", vars_file)
    assert code == 0
    assert json.loads(out.split("\n\n", 1)[1]) == {
        "n": "2",
        "b": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}],
    }
    code, out, _ = run(capsys, "--render", definition, "--vars", write(tmp_path, "v.json", call))
    assert (code, json.loads(out.split("\n\n", 1)[1])) == (0, {"n": "0"})
