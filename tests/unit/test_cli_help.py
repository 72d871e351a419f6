"""Every option of every subcommand states its default once, as ``(default: X)``, and correctly.

Issue 19's first hour: ``msgbridge serve --help`` showed two defaults that disagreed
(``default: var) (default: None)``) and ``None`` for ``--secret-key-file``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from client.cli import build_parser
from server.config import Settings, flag_name

_DEFAULTS = Settings()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.option_strings
        and action.help not in (None, argparse.SUPPRESS)
        and not isinstance(action, argparse._HelpAction)
    ]


def _stated(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_each_option_states_one_default_in_one_form(name: str) -> None:
    parser = _subcommands()[name]
    text = " ".join(parser.format_help().split())
    assert "(default: None)" not in text
    assert "default: -)" not in text
    for action in _options(parser):
        assert isinstance(action.help, str)
        help_text = action.help
        assert len(re.findall(r"default:", help_text)) <= 1, (action.option_strings, help_text)
        assert not re.search(r"\(default [^:]", help_text), (action.option_strings, help_text)
        default = action.default
        if isinstance(default, bool) or default in (None, "", 0, [], ()):
            continue
        assert f"default: {_stated(default)}" in help_text, (action.option_strings, help_text)


def _serve_help() -> dict[str, str]:
    serve = _subcommands()["serve"]
    return {
        action.option_strings[0]: " ".join(str(action.help).split()) for action in _options(serve)
    }


def test_serve_states_each_settings_default() -> None:
    helps = _serve_help()
    for f in dataclasses.fields(Settings):
        value = getattr(_DEFAULTS, f.name)
        help_text = helps[flag_name(f.name)]
        assert help_text.count("default:") == 1, help_text
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert f"default: {_stated(value)}" in help_text, help_text
        elif isinstance(value, str) and value:
            assert f"default: {value}" in help_text, help_text


@pytest.mark.parametrize(
    ("flag", "default"),
    [
        ("--secret-key-file", "<data-dir>/secret.key"),
        ("--data-dir", "./var"),
        ("--grpc-listen", "127.0.0.1:50051"),
        ("--database-url", "sqlite:///<data-dir>/msgbridge.db"),
        ("--public-url", "http://<http-listen>"),
        ("--outbound-allow", "none"),
        ("--sidecar", "on"),
        ("--demo", "off"),
        ("--provider-timeout-s", "15"),
        ("--config", "none"),
    ],
)
def test_serve_states_the_defaults_the_readme_gives(flag: str, default: str) -> None:
    assert _serve_help()[flag].endswith(f"default: {default})")


def test_the_readme_states_the_same_key_file_default() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "| `--secret-key-file` | `<data-dir>/secret.key` |" in readme
