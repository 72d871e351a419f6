"""Write docs/providers.md: the provider library's capabilities, read from integrations/*.json.

    .venv/bin/python docs/providers_table.py          # rewrite docs/providers.md
    .venv/bin/python docs/providers_table.py --check  # exit 1 when it is out of date

A test runs ``--check``, so the table cannot drift from the definitions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _generated import write_or_check  # beside this script, run as docs/…_table.py

from server.core import capabilities_of
from server.engine import load_definition

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "providers.md"
SKIP = {"schema.json", "template.json", "demo.json"}


def _mark(value: bool) -> str:
    return "✓" if value else "–"


def render() -> str:
    lines = [
        "# Provider library",
        "",
        "Generated from `integrations/*.json` by `docs/providers_table.py`; do not edit by hand.",
        "Each provider's page says what an admin sets in the provider's console.",
        "",
        "| provider | file | auth | send | media | inbound SMS | inbound MMS | receipts "
        "| signature | subscribe |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(ROOT.glob("integrations/*.json")):
        if path.name in SKIP:
            continue
        definition = load_definition(path.read_bytes())
        caps = capabilities_of(definition)
        page = f"providers/{path.stem}.md"
        name = (
            f"[{definition.name}]({page})" if (ROOT / "docs" / page).exists() else definition.name
        )
        signature = definition.webhook_auth.type if definition.webhook_auth else "–"
        lines.append(
            f"| {name} | `{path.name}` | {caps.auth or '–'} | {_mark(caps.send_message)} "
            f"| {_mark(caps.send_file)} | {_mark(caps.inbound_sms)} | {_mark(caps.inbound_mms)} "
            f"| {_mark(caps.delivery_receipts)} | {signature} | {_mark(caps.subscribe)} |"
        )
    lines += [
        "",
        "*media*: SendFile (MMS). *receipts*: delivered or failed webhooks. *signature*: the",
        "WebhookAuth scheme the gateway verifies. *subscribe*: the gateway registers its webhook URL",
        "with the provider's API when an installation is enabled.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return write_or_check(OUT, render(), argv, script="docs/providers_table.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
