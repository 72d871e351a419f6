"""Which webhook bodies the ingest path matches on the event loop, and which on the worker thread.

A body is matched inline only when that is sure to be quick: small, and with few payloads (a JSON
body has at most one more than its commas, an XML body no more than its tags)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.core.ingest import _ingestor
from server.engine import WebhookRequest, load_definition

DEFINITION = load_definition(
    (Path(__file__).resolve().parents[2] / "integrations" / "esendex.json").read_bytes()
)


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> list[WebhookRequest]:
    seen: list[WebhookRequest] = []

    async def recording_off_loop(function: Any, *args: Any) -> Any:
        seen.append(args[1])
        return function(*args)

    monkeypatch.setattr(_ingestor, "off_loop", recording_off_loop)
    return seen


def _request(content_type: str, body: bytes) -> WebhookRequest:
    return WebhookRequest(method="POST", content_type=content_type, body=body)


async def test_a_small_json_body_is_matched_inline(handed_over: list[WebhookRequest]) -> None:
    await _ingestor._match(DEFINITION, _request("application/json", b'{"m": {"from": "1"}}'))
    assert handed_over == []


async def test_a_small_xml_body_with_few_elements_is_matched_inline(
    handed_over: list[WebhookRequest],
) -> None:
    body = b"<m><from>1</from><to>2</to><text>hi</text></m>"
    await _ingestor._match(DEFINITION, _request("application/xml", body))
    assert handed_over == []


async def test_a_small_xml_body_with_many_elements_goes_off_the_loop(
    handed_over: list[WebhookRequest],
) -> None:
    body = b"<m>" + b"<i/>" * 900 + b"</m>"
    assert len(body) <= 4096 and b"," not in body
    request = _request("application/xml", body)
    await _ingestor._match(DEFINITION, request)
    assert handed_over == [request]


async def test_a_small_json_body_with_many_commas_goes_off_the_loop(
    handed_over: list[WebhookRequest],
) -> None:
    body = b"[" + b",".join(b"{}" for _ in range(100)) + b"]"
    request = _request("application/json", body)
    await _ingestor._match(DEFINITION, request)
    assert handed_over == [request]
