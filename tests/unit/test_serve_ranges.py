"""``msgbridge serve``'s numeric settings are range-checked before anything starts: a usage
error (exit 2, the setting named), never a traceback from a background task later."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from client.cli import build_parser, main
from server.config import SettingsError, load_settings


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [
        ("--events-retention-days", "1e400", "events_retention_days"),  # inf: overflowed a purge
        ("--messages-retention-days", "1e12", "messages_retention_days"),
        ("--dedupe-retention-days", "-1", "dedupe_retention_days"),
        ("--provider-timeout-s", "nan", "provider_timeout_s"),
        ("--receipt-wait-s", "inf", "receipt_wait_s"),
        ("--cache-ttl-s", "-2", "cache_ttl_s"),
        ("--webhook-max-body", "99999999999999999999", "webhook_max_body"),
        ("--outbound-connections", "-1", "outbound_connections"),
    ],
)
def test_serve_refuses_numbers_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, setting: str
) -> None:
    arguments = ["serve", "--data-dir", str(tmp_path), flag, value]
    with pytest.raises(SettingsError, match=f"^{setting}: must be from 0 to"):
        load_settings(build_parser().parse_args(arguments), environ={})

    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"msgbridge serve: {setting}: must be from 0 to")
    assert "Traceback" not in err


def test_serve_numbers_within_range_are_kept() -> None:
    settings = load_settings(
        {"events_retention_days": "36500", "receipt_wait_s": "0", "webhook_max_body": "0"},
        environ={},
    )
    assert (settings.events_retention_days, settings.receipt_wait_s) == (36500.0, 0.0)


_POSTGRES = ["--database-url", "postgresql://postgres@127.0.0.1:5432/never-opened"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workers", "0"], "workers: must be at least 1"),
        (["--workers", "2"], "workers: 2 processes need PostgreSQL"),
        ([*_POSTGRES, "--workers", "2", "--demo"], "workers: --demo runs one process"),
        (
            [*_POSTGRES, "--workers", "3", "--metrics-listen", "127.0.0.1:65534"],
            "metrics_listen: worker i serves its metrics on port 65534 + i",
        ),
    ],
)
def test_serve_refuses_workers_it_cannot_run(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    parsed = build_parser().parse_args(["serve", "--data-dir", str(tmp_path), *arguments])
    with pytest.raises(SettingsError, match=f"^{re.escape(message)}"):
        load_settings(parsed, environ={})


def test_workers_on_postgresql_are_accepted(tmp_path: Path) -> None:
    parsed = build_parser().parse_args(
        ["serve", "--data-dir", str(tmp_path), *_POSTGRES, "--workers", "4"]
    )
    assert load_settings(parsed, environ={}).workers == 4
