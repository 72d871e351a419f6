"""docs/configuration.md lists every setting (generated from Settings), and the example config
file docs/msgbridge.example.toml is one msgbridge accepts (issue 19: the TOML keys were
undocumented)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

from server.config import Settings, env_name, flag_name, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_page_is_generated_from_the_settings() -> None:
    checked = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "settings_table.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_every_setting_has_its_key_variable_and_flag_on_the_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    for f in dataclasses.fields(Settings):
        (row,) = [r for r in rows if r.startswith(f"| `{f.name}` |")]
        assert f"`{env_name(f.name)}`" in row
        assert f"`{flag_name(f.name)}" in row
    assert len(rows) == len(dataclasses.fields(Settings))


def test_the_example_config_file_is_accepted() -> None:
    example = ROOT / "docs" / "msgbridge.example.toml"
    settings = load_settings({}, environ={}, config_file=example)
    keys = tomllib.loads(example.read_text(encoding="utf-8"))
    assert keys and set(keys) <= {f.name for f in dataclasses.fields(Settings)}
    assert settings.public_url == "https://sms-webhooks.example.com"
    assert settings.secret_key_file == Path("/etc/msgbridge/secret.key")


def test_the_readme_links_the_configuration_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/configuration.md)" in readme
