"""The findings of the adversarial review (issue 12), replayed as they were reported; each case
name starts with the finding's number (1 to 10)."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid

from msgbridge.v1 import gateway_pb2

from ._case import MIB, Cases, expect, expect_status
from ._checks import HOSTILE_BODY, message_id_to, no_class_name, post_status, send
from ._env import ACME_NUMBER, DASHES_NUMBER, HOSTILE_NUMBER, Env, cli, message_webhook
from ._payloads import BOUNDARY, SHORT_BOUNDARY, encoded_words_multipart, many_parts

__all__ = ["CASES"]

cases = Cases("issue")
CASES = cases.all

_MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
_PARTS = f"multipart/form-data; boundary={SHORT_BOUNDARY}"
# Finding 1's own allowance: 400 MB, and 1 s for a CLI call made meanwhile (its start included).
_ITEM_1_RSS = 400 * MIB
_ITEM_1_MS = 1000.0


async def _encoded_words_with_cli(env: Env, url: str, words: int) -> str:
    body = encoded_words_multipart(words)
    posting = asyncio.create_task(env.post(url, body, {"Content-Type": _MULTIPART}))
    await asyncio.sleep(0.1)  # the body is on its way: the parse is what the CLI call meets
    code, _, err, seconds = await cli(env.core.target, env.tokens.read, "integrations")
    status = await posting
    expect(code == 0, f"msgbridge integrations meanwhile exited {code}: {err.strip()[-200:]}")
    expect(seconds < 1.0, f"msgbridge integrations meanwhile took {seconds:.2f} s (> 1 s)")
    return expect_status(status, HOSTILE_BODY)


for _words in (20_000, 60_000):

    async def _item_1(env: Env, words: int = _words) -> str:
        return await _encoded_words_with_cli(env, env.core_url("/webhooks/demo"), words)

    async def _item_1_token(env: Env, words: int = _words) -> str:
        return await _encoded_words_with_cli(env, env.core_url(env.path()), words)

    async def _item_1_sidecar(env: Env, words: int = _words) -> str:
        return await _encoded_words_with_cli(env, env.sidecar_url("/webhooks/demo"), words)

    cases.add(
        f"1-encoded-words-{_words}", _item_1, rss_bound=_ITEM_1_RSS, probe_bound_ms=_ITEM_1_MS
    )
    cases.add(
        f"1-encoded-words-{_words}-installation-url",
        _item_1_token,
        rss_bound=_ITEM_1_RSS,
        probe_bound_ms=_ITEM_1_MS,
    )
    cases.add(
        f"1-encoded-words-{_words}-separate-sidecar",
        _item_1_sidecar,
        rss_bound=_ITEM_1_RSS,
        probe_bound_ms=_ITEM_1_MS,
    )


@cases.case("2-multipart-19000-parts")
async def _many_parts(env: Env) -> str:
    body = many_parts(19_000, 1_000_000)
    return await post_status(env, env.core_url("/webhooks/demo"), body, _PARTS, HOSTILE_BODY)


@cases.case("2-multipart-19000-parts-x8-parallel")
async def _many_parts_parallel(env: Env) -> str:
    body = many_parts(19_000, 1_000_000)
    statuses = await asyncio.gather(
        *(
            env.post(env.core_url("/webhooks/demo"), body, {"Content-Type": _PARTS})
            for _ in range(8)
        )
    )
    for status in statuses:
        expect_status(status, HOSTILE_BODY)
    return "8x" + str(statuses[0])


@cases.case("2-multipart-19000-parts-separate-sidecar")
async def _many_parts_sidecar(env: Env) -> str:
    body = many_parts(19_000, 1_000_000)
    return await post_status(env, env.sidecar_url("/webhooks/demo"), body, _PARTS, HOSTILE_BODY)


# A provider's 2xx answer the map does not fit is a send refused by the provider (or, with the map
# ignored, accepted without an id); never a stall, a timeout or an internal error.
_MAPPED = ("OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION")

for _dashes in (400, 500):

    async def _item_3(env: Env, dashes: int = _dashes) -> str:
        result = await send(env, DASHES_NUMBER, f"dashes{dashes}")
        return expect_status(result.code, _MAPPED)

    cases.add(f"3-response-map-{_dashes}-dashes", _item_3)


_BIG_TEXT = 950 * 1024


async def _five_big_events(env: Env) -> int:
    """Five 950 KB inbound messages for ``acme`` (once per run); the cursor before them."""
    if env.memo.get("big-events") is None:
        cursor = await _latest_cursor(env)
        for index in range(5):
            text = f"{index}" * _BIG_TEXT
            status = await env.post(
                env.core_url(env.path()), message_webhook(ACME_NUMBER, text),
                {"Content-Type": "application/json"},
            )  # fmt: skip
            expect(status == 200, f"a 950 KB webhook answered {status}")
        env.memo["big-events"] = cursor
    return int(env.memo["big-events"])


async def _latest_cursor(env: Env) -> int:
    """The newest cursor of the log (read with small pages, through the alive org's check)."""
    await env.alive()
    return env.alive_cursor


@cases.case("4-cli-events-after-five-950kb-webhooks")
async def _cli_events(env: Env) -> str:
    after = await _five_big_events(env)
    code, out, err, _ = await cli(
        env.core.target, env.tokens.read, "events", "--after", str(after), "--org", "acme", "--json"
    )
    expect("RESOURCE_EXHAUSTED" not in err, "msgbridge events: RESOURCE_EXHAUSTED")
    expect(code == 0, f"msgbridge events exited {code}: {err.strip()[-200:]}")
    got = sum(1 for line in out.splitlines() if len(line) > _BIG_TEXT)
    expect(got == 5, f"msgbridge events printed {got} of the 5 large events")
    return f"exit {code}"


@cases.case("4-stream-events-default-limit-resumes")
async def _stream_resume(env: Env) -> str:
    after = await _five_big_events(env)
    cursor, seen = after, 0
    for _ in range(5):  # resume after every event seen, as a client whose stream broke would
        result = await env.gateway.stream(
            gateway_pb2.StreamEventsRequest(org_id="acme", after_cursor=cursor), env.tokens.read
        )
        expect(
            result.code == "OK",
            f"StreamEvents resumed after {cursor}: {result.code} {result.details[:120]}",
        )
        events = [event for response in result.reply for event in response.events]
        expect(bool(events), f"StreamEvents after {cursor} gave nothing")
        seen += len(events)
        cursor = events[0].cursor
        if seen >= 5:
            break
    return "OK"


@cases.case("4-list-events-default-page")
async def _list_events(env: Env) -> str:
    after = await _five_big_events(env)
    result = await env.gateway.call(
        "ListEvents",
        gateway_pb2.ListEventsRequest(org_id="acme", after_cursor=after),
        env.tokens.read,
    )
    return expect_status(result.code, ("OK",))


async def _big_unmatched(env: Env) -> None:
    if env.memo.get("big-unmatched"):
        return
    body = json.dumps({"unmatched": "u" * (900 * 1024)}).encode()
    for _ in range(16):  # 14.4 MB of kept requests
        status = await env.post(
            env.core_url("/webhooks/demo"), body, {"Content-Type": "application/json"}
        )
        expect(status == 200, f"an unmatched webhook answered {status}")
    env.memo["big-unmatched"] = 1


@cases.case("4-cli-unmatched-many-large")
async def _cli_unmatched(env: Env) -> str:
    await _big_unmatched(env)
    code, _, err, _ = await cli(
        env.core.target, env.tokens.full, "unmatched", "--integration", "demo"
    )
    expect("RESOURCE_EXHAUSTED" not in err, "msgbridge unmatched: RESOURCE_EXHAUSTED")
    expect(code == 0, f"msgbridge unmatched exited {code}: {err.strip()[-200:]}")
    return f"exit {code}"


@cases.case("4-cli-unmatched-page-size")
async def _cli_unmatched_paged(env: Env) -> str:
    await _big_unmatched(env)
    code, out, err, _ = await cli(
        env.core.target,
        env.tokens.full,
        "unmatched",
        "--integration",
        "demo",
        "--page-size",
        "2",
        "--json",
    )
    expect(code == 0, f"msgbridge unmatched --page-size 2 exited {code}: {err.strip()[-200:]}")
    expect(len(out.splitlines()) >= 16, f"printed {len(out.splitlines())} of at least 16 webhooks")
    return f"exit {code}"


# Every listing command pages with --page-size and follows the pages to the end.
_PAGED = {
    "integrations": (("integrations",), 3),  # demo, hostile, dashes at least
    "installations": (("installations", "--org", "acme"), 3),
    "events": (("events", "--earliest", "--org", "alive"), 2),  # the good webhooks so far
}

for _command, (_args, _least) in _PAGED.items():

    async def _paged(env: Env, args: tuple[str, ...] = _args, least: int = _least) -> str:
        await env.alive()  # two more good webhooks for alive, whatever ran before
        code, out, err, _ = await cli(
            env.core.target, env.tokens.read, *args, "--page-size", "1", "--json"
        )
        expect(code == 0, f"exited {code}: {err.strip()[-200:]}")
        lines = len(out.splitlines())
        expect(lines >= least, f"printed {lines} with --page-size 1, expected {least} or more")
        return f"exit {code}, {lines} lines"

    cases.add(f"4-cli-{_command}-page-size-1-follows-pages", _paged)


@cases.case("4-list-unmatched-default-page")
async def _list_unmatched(env: Env) -> str:
    await _big_unmatched(env)
    result = await env.gateway.call(
        "ListUnmatchedWebhooks",
        gateway_pb2.ListUnmatchedWebhooksRequest(integration_id="demo"),
        env.tokens.full,
    )
    return expect_status(result.code, ("OK",))


@cases.case("5-provider-echoes-secret-400")
async def _item_5(env: Env) -> str:
    # 401, 422 and 500 answers too among the provider cases.
    to = f"+1555{uuid.uuid4().int % 10**7:07d}"
    result = await send(env, HOSTILE_NUMBER, "echo-secret-400", to=to)
    expect(result.code != "OK", "a provider's 400 was answered OK")
    expect(env.secret not in result.text(), "the secret is in the gRPC error (details included)")
    expect("***" in result.text(), "the provider's answer is not in the error, masked with ***")
    message = await env.gateway.call(
        "GetMessage",
        gateway_pb2.GetMessageRequest(message_id=message_id_to(env, to)),
        env.tokens.read,
    )
    expect(message.code == "OK", f"GetMessage: {message.code}")
    expect(env.secret not in message.text(), "the secret is in GetMessage's reply")
    return result.code


@cases.case("5-provider-echoes-secret-cli-send-and-message")
async def _item_5_cli(env: Env) -> str:
    to = f"+1556{uuid.uuid4().int % 10**7:07d}"
    code, out, err, _ = await cli(
        env.core.target, env.tokens.full, "send", "--org", "acme", "--from", HOSTILE_NUMBER,
        "--to", to, "--text", "echo-secret-400",
    )  # fmt: skip
    expect(code != 0, "msgbridge send succeeded against a provider answering 400")
    expect(env.secret not in out + err, "the secret is in msgbridge send's output")
    code, out, err, _ = await cli(
        env.core.target, env.tokens.read, "message", message_id_to(env, to)
    )
    expect(code == 0, f"msgbridge message exited {code}: {err.strip()[-200:]}")
    expect(env.secret not in out + err, "the secret is in msgbridge message's output")
    return f"exit {code}"


@cases.case("5-secret-not-in-store-files-or-log")
async def _item_5_store(env: Env) -> str:
    await send(env, HOSTILE_NUMBER, "echo-secret-400")
    secret = env.secret.encode()
    for path in sorted(env.data_dir.iterdir()):
        if path.name.startswith("msgbridge.db"):
            expect(secret not in path.read_bytes(), f"the secret is in {path.name}")
    expect(
        not any(env.secret in line for line in env.core.log), "the secret is in the server's log"
    )
    return "clean"


@cases.case("6-read-token-durable-consumer")
async def _item_6(env: Env) -> str:
    result = await env.gateway.stream(
        gateway_pb2.StreamEventsRequest(consumer="prod", org_id="alive", earliest=True),
        env.tokens.read,
        wait_s=3,
    )
    return expect_status(result.code, ("PERMISSION_DENIED",))


@cases.case("6-read-token-ack")
async def _item_6_ack(env: Env) -> str:
    result = await env.gateway.call(
        "AckEvents", gateway_pb2.AckEventsRequest(consumer="prod", cursors=[1]), env.tokens.read
    )
    return expect_status(result.code, ("PERMISSION_DENIED",))


@cases.case("6-read-token-stream-without-consumer")
async def _item_6_plain(env: Env) -> str:
    result = await env.gateway.stream(
        gateway_pb2.StreamEventsRequest(org_id="alive", earliest=True), env.tokens.read, wait_s=3
    )
    return expect_status(result.code, ("OK",))


_INVALID_UTF8 = b"\x0a\x04\xff\xfe\xc0\x80"  # field 1, length 4: not UTF-8


@cases.case("7-invalid-utf8-get-integration")
async def _item_7(env: Env) -> str:
    logged = len(env.core.log)
    result = await env.gateway.raw(
        "/msgbridge.v1.Gateway/GetIntegration", _INVALID_UTF8, env.tokens.read
    )
    status = expect_status(result.code, ("INVALID_ARGUMENT",))
    no_class_name(result)
    await asyncio.sleep(0.2)  # the server's log lines reach the suite through a pipe
    new = list(env.core.log)[logged:]
    expect(
        not any('"level": "error"' in line or "Traceback" in line for line in new),
        "the server logged an error or a traceback for it",
    )
    return status


# A numeric option out of its field's range is a usage error (exit 2, argparse's "PROG: error:
# …"), never a traceback; every listing command has --page-size.
_BAD_NUMBERS = {
    "events-after-int64-overflow": ("events", "--after", "9223372036854775808"),
    "integration-version-int64-overflow": (
        "integration",
        "demo",
        "--version",
        "9223372036854775808",
    ),
    "integration-version-int64-underflow": (
        "integration",
        "demo",
        "--version=-9223372036854775809",
    ),
    "integrations-timeout-infinite": ("integrations", "--timeout", "1e400"),
    "integrations-page-size-int32-overflow": ("integrations", "--page-size", "2147483648"),
    "installations-page-size-negative": ("installations", "--page-size=-1"),
    "unmatched-page-size-int32-overflow": ("unmatched", "--page-size", "99999999999"),
    "events-page-size-negative": ("events", "--earliest", "--page-size=-5"),
}

for _name, _args in _BAD_NUMBERS.items():

    async def _item_8(env: Env, args: tuple[str, ...] = _args) -> str:
        code, _, err, _ = await cli(env.core.target, env.tokens.read, *args)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        expect("Traceback" not in err, f"a traceback: {last}")
        expect(": error: " in err, f"no argparse-style message: {last!r}")
        return expect_status(f"exit {code}", ("exit 2",))

    cases.add(f"8-cli-{_name}", _item_8)


@cases.case("9-data-files-0600")
async def _item_9(env: Env) -> str:
    await env.alive()  # the WAL and its index exist while the server runs
    found = sorted(p for p in env.data_dir.iterdir() if p.name.startswith("msgbridge.db"))
    expect(bool(found), "no database file in the data dir")
    for path in found:
        mode = stat.S_IMODE(path.stat().st_mode)
        expect(mode & 0o077 == 0, f"{path.name} is {mode:04o}")
    return ",".join(p.name.removeprefix("msgbridge.db") or "db" for p in found) + " 0600"
