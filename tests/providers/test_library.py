"""The provider library as the issue asks for it: every definition checks clean, the docs table is
generated from the definitions, and each provider's fixtures cover what a provider must prove."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client.cli import main as cli
from server.core import capabilities_of
from server.engine import Definition, load_definition

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "providers"
LIBRARY = sorted(
    p.stem
    for p in (ROOT / "integrations").glob("*.json")
    if p.name not in {"schema.json", "template.json", "demo.json"}
)
RECEIPTS = {"messageDelivered", "messageFailed", "messageSent"}


def test_every_definition_checks_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (ROOT / "integrations").glob("*.json"))
    assert cli(["check", *files]) == 0
    assert ": error" not in capsys.readouterr().out


def test_the_library_has_the_providers_the_issue_names() -> None:
    named = {
        "twilio", "telnyx", "bandwidth", "vonage", "plivo", "sinch", "signalwire", "infobip",
        "clicksend", "flowroute", "messagebird", "commio", "46elks", "didww", "voipms", "skyetel",
    }  # fmt: skip
    assert named <= set(LIBRARY)
    assert len(LIBRARY) >= 12


def test_docs_table_is_generated_from_the_definitions() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "providers_table.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for provider in LIBRARY:
        assert (ROOT / "docs" / "providers" / f"{provider}.md").exists()


def _receipt_models(definition: Definition) -> set[str]:
    """The receipt event types the definition's webhook models yield (the same for every
    variant: docs/format.md, "Variants")."""
    return {model.event_type.value for model in definition.webhooks} & RECEIPTS


def _events(provider: str) -> list[dict[str, Any]]:
    events = []
    for path in sorted((FIXTURES / provider / "webhooks").glob("*.json")):
        events.extend(json.loads(path.read_text(encoding="utf-8"))["expect_events"])
    return events


@pytest.mark.parametrize("provider", LIBRARY)
def test_fixtures_cover_send_non_ascii_inbound_receipts_and_media(provider: str) -> None:
    assert list((FIXTURES / provider / "send").glob("*.json")), "no send fixture"
    events = _events(provider)
    inbound = [e for e in events if e["type"] == "message"]
    assert any(not e.get("text", "").isascii() for e in inbound), "no non-ASCII inbound SMS"
    definition = load_definition((ROOT / "integrations" / f"{provider}.json").read_bytes())
    page = (ROOT / "docs" / "providers" / f"{provider}.md").read_text(encoding="utf-8")
    if _receipt_models(definition):
        assert any(e["type"] in RECEIPTS for e in events), "no receipt"
    else:  # a provider that sends none says so to the admin, not only by a missing ✓
        assert "sends no delivery receipts" in page, "no receipt models; the page must say so"
    if capabilities_of(definition).inbound_mms:
        media = [len(e.get("media_urls", [])) for e in events if e["type"] == "mms"]
        assert media, "inbound MMS supported but no MMS fixture"
        # a chat platform's message carries one file (several come as several messages): its
        # page says so, as a provider without receipts does
        assert max(media) >= 2 or "one file per message" in page, (
            "no MMS body with several media, and the page does not say one file per message"
        )
    if definition.subscribe:
        assert list((FIXTURES / provider / "subscribe").glob("*.json")), "no subscribe fixture"
    for path in (FIXTURES / provider).rglob("*.json"):
        if path.parent.name in ("send", "webhooks", "subscribe"):
            assert json.loads(path.read_text(encoding="utf-8")).get("source"), (
                f"{path.name}: no source"
            )
