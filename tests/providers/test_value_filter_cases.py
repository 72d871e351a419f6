"""(ext) Value filters in shipped definitions (docs/format.md, "Value filters"): what each one is
there for, on the definition that ships. The conformance fixtures prove the same through the real
sidecar; these pin down the values a fixture cannot show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.engine import (
    Definition,
    WebhookRequest,
    load_definition,
    match_webhook,
    render_request,
)

ROOT = Path(__file__).resolve().parents[2]


def _definition(provider: str) -> Definition:
    return load_definition(json.loads((ROOT / "integrations" / f"{provider}.json").read_text()))


@pytest.mark.parametrize(
    ("status_id", "status"),
    [("UNKNOWN.null", "UNKNOWN"), ("UNKNOWN.SOMETHING", "UNKNOWN.SOMETHING")],
)
def test_bulksms_trims_the_null_subtype_and_only_it(status_id: str, status: str) -> None:
    # the reference's Message schema: status.id is "type.subtype", "null" for no subtype
    body = [{"id": "1", "type": "SENT", "to": "+1", "status": {"id": status_id, "type": "UNKNOWN"}}]
    request = WebhookRequest(
        method="POST", content_type="application/json", body=json.dumps(body).encode()
    )
    (event,) = match_webhook(_definition("bulksms"), request).events
    assert event.status == status


@pytest.mark.parametrize("base_url", ["xk2v9.api.infobip.com", "https://xk2v9.api.infobip.com"])
def test_infobip_takes_the_base_url_as_either_doc_writes_it(base_url: str) -> None:
    # the portal shows "xxxxx.api.infobip.com", the API docs "Base URL: https://example…"
    definition = _definition("infobip")
    values = {
        "Base URL": base_url,
        "API Key": "k",
        "Authentication": "api_key",
        "from": "+385921004026",
        "to": "+41793026727",
        "content": "hi",
    }
    for template in (definition.send_message, *definition.subscribe):
        rendered = render_request(definition, template, values)
        assert rendered.url.startswith("https://xk2v9.api.infobip.com/"), rendered.url
