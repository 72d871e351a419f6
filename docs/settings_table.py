"""Write docs/configuration.md: every setting's TOML key, environment variable, flag and default,
read from the Settings definition (server/config.py).

    .venv/bin/python docs/settings_table.py          # rewrite docs/configuration.md
    .venv/bin/python docs/settings_table.py --check  # exit 1 when it is out of date

A test runs ``--check``, so a setting cannot be added, renamed or have its default changed
without the page saying so.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from _generated import write_or_check  # beside this script, run as docs/…_table.py

from server.config import Settings, env_name, flag_name, shown_default

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "configuration.md"

_TOML_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "Path": "string (path)",
    "Path | None": "string (path)",
    "tuple[str, ...]": "array of strings",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `Settings` in `server/config.py` by `docs/settings_table.py`; do not edit",
        "by hand.",
        "",
        "Every setting is a flag of `msgbridge serve`, an environment variable and a key of the",
        "TOML file given with `--config` (or `MSGBRIDGE_CONFIG`). A flag wins over the",
        "environment, the environment over the file, the file over the default. The file holds",
        "the keys below at its top level, nothing else (an unknown key is refused at start);",
        "[`msgbridge.example.toml`](msgbridge.example.toml) is an example. In the environment a",
        "list is comma-separated (`MSGBRIDGE_OUTBOUND_ALLOW=127.0.0.1,10.0.0.0/8`) and a",
        "boolean is `1`, `true`, `yes` or `on` (else `0`, `false`, `no`, `off`); on the command",
        "line a list's flag is repeated and a boolean is `--sidecar` or `--no-sidecar`.",
        "`MSGBRIDGE_API_TOKENS` may hold API tokens themselves, beside `api_tokens_file` (README,",
        '"API tokens").',
        "",
        "| TOML key | type | environment variable | flag | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(Settings):
        kind = _TOML_TYPES[str(f.type)]
        flag = flag_name(f.name)
        if kind == "boolean":
            flag = f"{flag}, --no-{flag[2:]}"
        lines.append(
            f"| `{f.name}` | {kind} | `{env_name(f.name)}` | `{flag}` "
            f"| `{_cell(shown_default(f.name))}` | {_cell(f.metadata['help'])} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return write_or_check(OUT, render(), argv, script="docs/settings_table.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
