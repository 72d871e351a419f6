"""(ext) Inbound media given as an id (docs/format.md, "Media given as an id"): how a
``Media.resolve`` loads, what a webhook model's ``$media_id$`` makes of an event, how the
resolve answer is read and the file's URL made, and what ``msgbridge check`` says about it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.engine import (
    DefinitionError,
    RenderError,
    WebhookRequest,
    check_definition,
    download_url,
    load_definition,
    match_webhook,
    media_credentials,
    media_id_of,
    media_id_url,
    read_resolve_answer,
    render_request,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = json.loads((ROOT / "integrations" / "template.json").read_text())

GET_FILE: dict[str, Any] = {
    "request_method": "GET",
    "request_url": "https://api.example.com/bot$API key$/getFile",
    "request_parameters": {"file_id": "$media_id$"},
    "response_map": {"ok": True, "result": {"file_path": "$file_path$"}, "description": "$error$"},
    "download": "https://api.example.com/file/bot$API key$/$file_path$",
}
PHOTO_MODEL: dict[str, Any] = {
    "event_key": "photo",
    "event_type": "mms",
    "request_method": "POST",
    "request_parameters": {
        "from": "$from$",
        "to": "$to$",
        "caption": "$text?$",
        "photo": [{"file_id": "$media_id$"}],
    },
}


def _doc(resolve: Any = None, *, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(TEMPLATE)
    doc["Webhook"] = [*doc["Webhook"], *(models if models is not None else [PHOTO_MODEL])]
    if resolve is not None:
        doc["Media"] = {"resolve": resolve}
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


def test_a_media_id_url_names_the_id_and_nothing_else() -> None:
    assert media_id_url("AgAD-1_x") == "media-id:AgAD-1_x"
    assert media_id_of("media-id:AgAD-1_x") == "AgAD-1_x"
    assert media_id_of("media-id:") is None
    assert media_id_of("https://api.example.com/media-id:1") is None


def test_a_model_captures_ids_and_the_event_names_them_after_its_urls() -> None:
    definition = load_definition(_doc(GET_FILE))
    body = {"from": "42", "to": "7", "photo": [{"file_id": "small"}, {"file_id": "large"}]}
    request = WebhookRequest(
        method="POST", content_type="application/json", body=json.dumps(body).encode()
    )
    result = match_webhook(definition, request)
    (event,) = result.events
    assert event.media_urls == ("media-id:small", "media-id:large")


def test_the_resolve_request_is_rendered_with_the_id_and_the_properties() -> None:
    definition = load_definition(_doc(GET_FILE))
    resolve = definition.media.resolve
    assert resolve is not None and resolve.request is not None
    rendered = render_request(
        definition, resolve.request, {"API key": "123:abc", "media_id": "AgAD/1"}
    )
    assert rendered.method == "GET"
    assert rendered.url == "https://api.example.com/bot123%3Aabc/getFile?file_id=AgAD%2F1"
    assert ("Authorization", "Bearer 123:abc") in rendered.headers  # the definition's own auth


def test_the_answer_gives_the_file_url_a_path_of_several_segments() -> None:
    resolve = load_definition(_doc(GET_FILE)).media.resolve
    assert resolve is not None
    body = json.dumps({"ok": True, "result": {"file_id": "x", "file_path": "photos/file_1.jpg"}})
    answer = read_resolve_answer(resolve, 200, body.encode(), "application/json")
    assert answer.verdict == "resolved"
    url = download_url(resolve, {"API key": "123:abc"}, "x", answer.captures)
    assert url == "https://api.example.com/file/bot123%3Aabc/photos/file_1.jpg"


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "photos//x", "/abs", ".", "a/%2e%2e/b", "", "a/..?q=1"]
)
def test_a_captured_path_cannot_climb_or_fold_the_template(path: str) -> None:
    resolve = load_definition(_doc(GET_FILE)).media.resolve
    assert resolve is not None
    with pytest.raises(RenderError, match="not a relative path"):
        download_url(resolve, {"API key": "k"}, "x", {"file_path": path})


def test_a_captured_path_is_encoded_segment_by_segment() -> None:
    resolve = load_definition(_doc(GET_FILE)).media.resolve
    assert resolve is not None
    url = download_url(resolve, {"API key": "k"}, "x", {"file_path": "a b/c%d"})
    assert url == "https://api.example.com/file/botk/a%20b/c%25d"


def test_a_captured_path_may_end_with_a_slash_and_a_query() -> None:
    # 360dialog serves Meta's attachment URL on its own host: the path and query are Meta's
    resolve_doc = {
        "request_method": "GET",
        "request_url": "https://waba.example.io/$media_id$",
        "response_map": {"url": "$file_url$"},
        "download": "https://waba.example.io/$file_url|trim_prefix:https://cdn.example.com/$",
    }
    resolve = load_definition(_doc(resolve_doc)).media.resolve
    assert resolve is not None
    answer = read_resolve_answer(
        resolve,
        200,
        b'{"url": "https://cdn.example.com/biz/attachments/?mid=77&ext=1&hash=A%2Fb"}',
        "application/json",
    )
    url = download_url(resolve, {}, "77", answer.captures)
    assert url == "https://waba.example.io/biz/attachments/?mid=77&ext=1&hash=A%2Fb"
    with pytest.raises(RenderError, match="not a relative path"):
        download_url(resolve, {}, "77", {"file_url": "https://cdn.example.com/a?b#frag"})


@pytest.mark.parametrize(
    ("status", "body", "verdict", "reason"),
    [
        (200, {"ok": False, "description": "Bad Request: invalid file_id"}, "refused",
         "Bad Request: invalid file_id"),
        (400, {"ok": False}, "refused", "HTTP 400"),
        (404, {}, "refused", "HTTP 404"),
        (429, {}, "unavailable", "HTTP 429"),
        (502, {}, "unavailable", "HTTP 502"),
    ],
)  # fmt: skip
def test_a_failed_answer_says_whether_to_try_again(
    status: int, body: Any, verdict: str, reason: str
) -> None:
    resolve = load_definition(_doc(GET_FILE)).media.resolve
    assert resolve is not None
    answer = read_resolve_answer(resolve, status, json.dumps(body).encode(), "application/json")
    assert (answer.verdict, answer.reason) == (verdict, reason)


def test_a_whole_url_in_the_answer_is_a_base_url() -> None:
    resolve_doc = {
        "request_method": "GET",
        "request_url": "https://graph.example.com/v19.0/$media_id$",
        "response_map": {"url": "$file_url$"},
        "download": "$file_url|base_url$",
    }
    doc = _doc(resolve_doc)
    doc["Webhook"][-1]["event_type"] = "mms"
    assert not [p for p in _problems(doc) if p.startswith("error")]
    resolve = load_definition(doc).media.resolve
    assert resolve is not None
    body = b'{"url": "https://cdn.example.net/v/t?ext=1&hash=AbC"}'
    answer = read_resolve_answer(resolve, 200, body, "application/json")
    url = download_url(resolve, {}, "1", answer.captures)
    assert url == "https://cdn.example.net/v/t?ext=1&hash=AbC"
    with pytest.raises(RenderError):
        download_url(resolve, {}, "1", {"file_url": "file:///etc/passwd"})


def test_a_download_without_a_request_is_made_from_the_id() -> None:
    doc = _doc({"download": "https://api-data.example.com/v2/message/$media_id$/content"})
    assert not [p for p in _problems(doc) if p.startswith("error")]
    resolve = load_definition(doc).media.resolve
    assert resolve is not None and resolve.request is None
    url = download_url(resolve, {}, "325708", {})
    assert url == "https://api-data.example.com/v2/message/325708/content"


def test_the_checker_wants_a_resolve_for_a_media_id() -> None:
    assert _problems(_doc()) == [
        "error /Webhook/3/request_parameters: the model captures $media_id$, a file given as an "
        'id, but the definition has no Media resolve to find the file by its id: add "Media": '
        '{"resolve": {...}}'
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"request_parameters": {"file_id": "x"}}, "error /Media/resolve: neither the resolve "
         "request nor download uses $media_id$: every file would be found at the same place"),
        ({"download": "https://api.example.com/file/$file_path$/$size$"}, "error "
         "/Media/resolve/download: unknown placeholder $size$: not a property of this file, nor a "
         "variable of the Media download"),
        ({"response_map": {"result": {"file_path": "$file_path$", "file_size": "$size$"}}},
         "warning /Media/resolve/response_map: $size$: captured but not used by download"),
        ({"download": "/file/$file_path$"}, "error /Media/resolve/download: download must be an "
         "http or https URL, starting with https:// or http://"),
        ({"request_parameters": {"file_id": "$messageid$"}}, "error "
         "/Media/resolve/request_parameters/file_id: $messageid$ is not available in the Media "
         "resolve request"),
        ({"response_map": None}, "error /Media/resolve: a resolve request has request_method, "
         "request_url and response_map together"),
        ({"download": None}, 'error /Media/resolve: resolve is missing the required key '
         '"download"'),
    ],
)  # fmt: skip
def test_the_checker_reports_a_resolve_that_cannot_work(
    change: dict[str, Any], expected: str
) -> None:
    resolve = {**GET_FILE, **change}
    resolve = {k: v for k, v in resolve.items() if v is not None}
    problems = _problems(_doc(resolve))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_broken_resolve_refuses_the_file() -> None:
    with pytest.raises(DefinitionError):
        load_definition(_doc({"download": "https://api.example.com/file/x"}))


def test_the_resolve_requests_origin_may_take_the_media_credentials() -> None:
    doc = _doc({**GET_FILE, "request_url": "https://files.example.org/bot$API key$/getFile"})
    doc["Media"]["auth"] = "api"
    definition = load_definition(doc)
    url = "https://files.example.org/file/1"
    assert media_credentials(definition, url, {"API key": "k3y"}) == (
        ("Authorization", "Bearer k3y"),
    )


def test_a_model_may_build_the_id_as_an_event_field() -> None:
    model = {
        **PHOTO_MODEL,
        "request_parameters": {"from": "$from$", "to": "$to$", "file": {"uid": "$uid$"}},
        "build": {"media_id": "file-$uid$"},
    }
    doc = _doc(GET_FILE, models=[model])
    assert not [p for p in _problems(doc) if p.startswith("error")]
    body = b'{"from": "1", "to": "2", "file": {"uid": "77"}}'
    request = WebhookRequest(method="POST", content_type="application/json", body=body)
    (event,) = match_webhook(load_definition(doc), request).events
    assert event.media_urls == ("media-id:file-77",)
    kept = _doc(GET_FILE, models=[{**PHOTO_MODEL, "keep": ["media_id"]}])
    assert any("/keep/0" in p and "error" in p for p in _problems(kept)), _problems(kept)
