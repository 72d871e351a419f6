"""The fake provider: what it records, how it answers, and its control API."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from _clock import loop_clock

from server.demo import (
    Answer,
    FakeProviderState,
    RunningFakeProvider,
    build_fake_provider,
    start_fake_provider,
)


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    async with await start_fake_provider() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_default_answer_is_the_seed_shape_with_unique_ids(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    ids = []
    for _ in range(3):
        async with http.post(f"{fake.url}/messages", json={"to": "1"}) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            ids.append((await response.json())["data"]["id"])
    assert len(set(ids)) == 3
    assert [r.answer_id for r in fake.state.requests] == ids
    assert [r.answer_status for r in fake.state.requests] == [200, 200, 200]
    assert [r.seq for r in fake.state.requests] == [1, 2, 3]


async def test_ids_differ_between_provider_instances() -> None:
    assert FakeProviderState().id_prefix != FakeProviderState().id_prefix


async def test_records_json_requests(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    payload = {"from": "+1555", "content": 'ünïcode 🎉 "quoted"\n\\', "n": 3}
    raw = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/vnd.api+json", "Authorization": "Basic dTpw"}
    async with http.put(f"{fake.url}/a/b%2Fc?x=1&x=2&y=", data=raw, headers=headers) as response:
        assert response.status == 200
    [received] = fake.state.requests
    assert received.method == "PUT"
    assert received.path == "/a/b/c"
    assert received.query == (("x", "1"), ("x", "2"), ("y", ""))
    assert received.body == raw
    assert received.json == payload
    assert received.content_type == "application/vnd.api+json"
    assert received.header("authorization") == "Basic dTpw"
    assert received.form is None and received.parts is None


async def test_unparseable_json_keeps_the_raw_body(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{fake.url}/m", data=b"{not json", headers=headers):
        pass
    [received] = fake.state.requests
    assert (received.body, received.json) == (b"{not json", None)


async def test_records_form_requests(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    body = "a%5Bb%5D=1&To=%2B1555&To=%2B1666&Body=h%C3%A9+%F0%9F%91%8B&empty="
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    async with http.post(f"{fake.url}/form", data=body.encode(), headers=headers):
        pass
    [received] = fake.state.requests
    assert received.form == (
        ("a[b]", "1"),
        ("To", "+1555"),
        ("To", "+1666"),
        ("Body", "hé 👋"),
        ("empty", ""),
    )
    assert received.json is None


async def test_records_multipart_requests_exactly(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("from", "+1555")
    form.add_field("text", "line one\r\nline two 🎉")
    form.add_field("empty", "")
    binary = bytes(range(256)) + b"\r\n--not-the-boundary\r\n"
    form.add_field("media", binary, filename="cat.png", content_type="image/png")
    async with http.post(f"{fake.url}/mms", data=form):
        pass
    [received] = fake.state.requests
    parts = received.parts
    assert parts is not None
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("from", None, "text/plain"),
        ("text", None, "text/plain"),
        ("empty", None, "text/plain"),
        ("media", "cat.png", "image/png"),
    ]
    assert [p.data for p in parts[:3]] == [b"+1555", "line one\r\nline two 🎉".encode(), b""]
    assert parts[3].data == binary


async def test_multipart_parts_without_headers_and_malformed_bodies(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ"}
    good = b"--XyZ\r\n\r\nbare\r\n--XyZ--\r\n"
    async with http.post(f"{fake.url}/ok", data=good, headers=headers):
        pass
    async with http.post(f"{fake.url}/bad", data=b"--XyZ\r\nno end", headers=headers):
        pass
    ok, bad = fake.state.requests
    assert ok.parts is not None
    assert [(p.name, p.data) for p in ok.parts] == [(None, b"bare")]
    assert bad.parts is None
    assert bad.body == b"--XyZ\r\nno end"


async def test_scripted_sequence_then_last_answer_repeats(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.state.script(
        "/send",
        Answer(status=503, headers=(("Retry-After", "2"),), text="busy"),
        Answer(status=429, json={"error": "slow"}),
        Answer(status=201, json={"sid": "SM{id}", "ids": ["{id}"]}),
    )
    answers = []
    for _ in range(4):
        async with http.post(f"{fake.url}/send") as response:
            answers.append(
                (response.status, response.headers.get("Retry-After"), await response.read())
            )
    records = fake.state.requests
    assert answers[0] == (503, "2", b"busy")
    assert answers[1][:2] == (429, None) and json.loads(answers[1][2]) == {"error": "slow"}
    for (status, _, body), record in zip(answers[2:], records[2:], strict=True):
        assert status == 201
        assert json.loads(body) == {"sid": f"SM{record.answer_id}", "ids": [record.answer_id]}
    assert [r.answer_status for r in records] == [503, 429, 201, 201]


async def test_path_script_beats_wildcard_and_removal_restores_default(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.state.script("*", Answer(status=500))
    fake.state.script("/special", Answer(status=202))
    statuses = []
    for path in ("/any", "/special"):
        async with http.get(f"{fake.url}{path}") as response:
            statuses.append(response.status)
    fake.state.script("*")
    async with http.get(f"{fake.url}/any") as response:
        statuses.append(response.status)
    assert statuses == [500, 202, 200]


async def test_scripted_headers_and_content_type(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.state.script(
        "/h", Answer(text="<ok/>", headers=(("Content-Type", "application/xml"), ("X-A", "1")))
    )
    async with http.get(f"{fake.url}/h") as response:
        assert response.headers["Content-Type"] == "application/xml"
        assert response.headers["X-A"] == "1"
        assert await response.read() == b"<ok/>"


async def test_delay_holds_the_answer(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.state.script("/slow", Answer(delay_s=3600))

    async def get() -> None:
        async with http.get(f"{fake.url}/slow", timeout=aiohttp.ClientTimeout(total=30)):
            pass

    with loop_clock() as clock:
        getting = asyncio.create_task(get())
        async with asyncio.timeout(30):
            await fake.state.wait_for_requests(1)
        clock.advance(60)  # the client's deadline passes once the provider has the request
        with pytest.raises(asyncio.TimeoutError):
            await getting
    assert [r.path for r in fake.state.requests] == ["/slow"]


async def test_close_drops_the_connection_without_answer(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.state.script("/drop", Answer(close=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(f"{fake.url}/drop", data=b"x"):
            pass
    [received] = fake.state.requests
    assert (received.body, received.answer_status) == (b"x", None)


async def test_wait_for_requests_returns_once_they_arrived(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    waiting = asyncio.create_task(fake.state.wait_for_requests(2, path="/b"))
    for path in ("/a", "/b", "/a", "/b"):
        async with http.get(f"{fake.url}{path}"):
            pass
    await asyncio.wait_for(waiting, 5)
    assert [r.path for r in fake.state.requests_to("/b")] == ["/b", "/b"]


async def test_max_recorded_keeps_the_newest() -> None:
    async with await start_fake_provider(max_recorded=2) as fake:
        async with aiohttp.ClientSession() as http:
            for n in range(4):
                async with http.get(f"{fake.url}/{n}"):
                    pass
        assert [r.path for r in fake.state.requests] == ["/2", "/3"]


async def test_control_api_scripts_reads_and_clears(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    script = {
        "path": "/m",
        "answers": [
            {"status": 429, "headers": {"Retry-After": "1"}, "json": {"e": 1}},
            {"status": 200, "text": "id={id}"},
        ],
    }
    async with http.post(f"{fake.url}/_fake/script", json=script) as response:
        assert response.status == 204
    async with http.post(f"{fake.url}/m", data={"k": "v"}) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "1")
    async with http.post(f"{fake.url}/m", json={"x": "é"}) as response:
        second_body = await response.text()
    async with http.get(f"{fake.url}/other?q=1"):
        pass

    async with http.get(f"{fake.url}/_fake/requests") as response:
        everything = (await response.json())["requests"]
    async with http.get(f"{fake.url}/_fake/requests", params={"path": "/m"}) as response:
        only_m = (await response.json())["requests"]
    assert [r["path"] for r in everything] == ["/m", "/m", "/other"]
    assert [r["path"] for r in only_m] == ["/m", "/m"]
    form_record, json_record, other = everything
    assert form_record["form"] == [["k", "v"]]
    assert form_record["answer_status"] == 429
    assert json_record["json"] == {"x": "é"}
    assert base64.b64decode(json_record["body_base64"]) == json.dumps({"x": "é"}).encode()
    assert second_body == f"id={json_record['answer_id']}"
    assert other["query"] == [["q", "1"]]
    assert ["Host", fake.url.removeprefix("http://")] in other["headers"]

    async with http.delete(f"{fake.url}/_fake/requests") as response:
        assert response.status == 204
    assert fake.state.requests == []
    async with http.delete(f"{fake.url}/_fake/script") as response:
        assert response.status == 204
    async with http.post(f"{fake.url}/m") as response:
        assert response.status == 200


async def test_records_when_each_request_arrived_and_reads_those_after_a_seq(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    """The benchmarks measure send rates from the arrival times and poll for new requests."""
    for n in range(3):
        async with http.post(f"{fake.url}/m", json={"n": n}) as response:
            assert response.status == 200
    arrivals = [r.received_at for r in fake.state.requests]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] > 0
    async with http.get(f"{fake.url}/_fake/requests", params={"after": "1"}) as response:
        later = (await response.json())["requests"]
    assert [(r["seq"], r["received_at"]) for r in later] == [(2, arrivals[1]), (3, arrivals[2])]
    async with http.get(f"{fake.url}/_fake/requests", params={"after": "x"}) as response:
        assert response.status == 400


async def test_control_api_reports_multipart_parts(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("caption", "hi")
    form.add_field("file", b"\xff\x00", filename="a.bin", content_type="application/octet-stream")
    async with http.post(f"{fake.url}/mms", data=form):
        pass
    async with http.get(f"{fake.url}/_fake/requests") as response:
        [record] = (await response.json())["requests"]
    caption, file = record["parts"]
    assert (caption["name"], caption["text"]) == ("caption", "hi")
    assert (file["filename"], base64.b64decode(file["data_base64"])) == ("a.bin", b"\xff\x00")
    assert "text" not in file


@pytest.mark.parametrize(
    "script",
    [
        {"answers": []},
        {"path": "no-slash", "answers": []},
        {"path": "/m", "answers": [{"status": 200, "bogus": 1}]},
        {"path": "/m", "answers": [{"status": "abc"}]},
    ],
)
async def test_control_api_rejects_bad_scripts(
    script: dict[str, object], fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{fake.url}/_fake/script", json=script) as response:
        assert response.status == 400
        assert "bad script" in (await response.json())["error"]
    assert fake.state.requests == []


def test_build_returns_the_app_and_its_state() -> None:
    app, state = build_fake_provider(max_recorded=5)
    assert state.max_recorded == 5
    assert state.requests == []
    assert len(app.router.routes()) == 5


async def test_runs_as_a_module() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.demo", "--port", "0",
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("fake provider listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/messages", json={"a": 1}) as response:
                answer = await response.json()
            async with http.get(f"{url}/_fake/requests") as response:
                [record] = (await response.json())["requests"]
        assert record["json"] == {"a": 1}
        assert answer == {"data": {"id": record["answer_id"]}}
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_an_authorization_request_is_approved_with_a_redirect_unless_its_path_is_scripted(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    query = {
        "response_type": "code",
        "client_id": "c",
        "redirect_uri": "https://gw.example/oauth/callback?x=1",
        "state": "s t",
    }
    fake.state.script("*", Answer(status=500))  # a script for every path does not stand in
    async with http.get(f"{fake.url}/oauth/authorize", params=query, allow_redirects=False) as r:
        assert r.status == 302
        location = r.headers["Location"]
    (received,) = fake.state.requests
    assert received.answer_status == 302
    assert location == (
        f"https://gw.example/oauth/callback?x=1&code={received.answer_id}&state=s+t"
    )
    no_state = {k: v for k, v in query.items() if k != "state"}
    async with http.get(f"{fake.url}/a", params=no_state, allow_redirects=False) as r:
        assert r.headers["Location"].endswith(f"?x=1&code={fake.state.requests[-1].answer_id}")
    # Not an authorization request: a POST, another response_type, no redirect_uri.
    async with http.post(f"{fake.url}/a", params=query, allow_redirects=False) as r:
        assert r.status == 500
    for changed in ({"response_type": "token"}, {"redirect_uri": ""}):
        async with http.get(f"{fake.url}/a", params={**query, **changed}) as r:
            assert r.status == 500
    fake.state.script("/oauth/authorize", Answer(status=400, json={"error": "access_denied"}))
    async with http.get(f"{fake.url}/oauth/authorize", params=query) as r:
        assert r.status == 400


async def test_control_api_scripts_a_files_bytes(
    fake: RunningFakeProvider, http: aiohttp.ClientSession
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    script = {"path": "/f.png", "answers": [{"body_base64": base64.b64encode(png).decode()}]}
    async with http.post(f"{fake.url}/_fake/script", json=script) as response:
        assert response.status == 204
    async with http.get(f"{fake.url}/f.png") as response:
        assert (response.status, await response.read()) == (200, png)
    bad = {"path": "/f.png", "answers": [{"body_base64": "not base64!"}]}
    async with http.post(f"{fake.url}/_fake/script", json=bad) as response:
        assert response.status == 400
