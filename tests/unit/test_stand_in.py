"""The ``provider_stand_in`` setting (docs/format.md, "Proving a definition"): how an entry is read,
what a redirected URL keeps, and where the setting comes from (flag, environment, TOML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.cli import build_parser, main
from server.config import Settings, SettingsError, load_settings
from server.outbound import OutboundPolicy, PolicyRefused, check_stand_in, parse_stand_ins


def test_a_redirect_keeps_path_and_query_and_takes_scheme_host_and_port() -> None:
    stand_ins = parse_stand_ins(["bulksms=http://127.0.0.1:8090/", "b=https://[::1]"])
    bulksms = stand_ins["bulksms"]
    assert bulksms.base == "http://127.0.0.1:8090"
    assert (
        bulksms.redirect("https://api.bulksms.com/v1/messages?auto-unicode=true&x=%2F#frag")
        == "http://127.0.0.1:8090/v1/messages?auto-unicode=true&x=%2F"
    )
    assert bulksms.redirect("https://user:pw@h.example:8443") == "http://127.0.0.1:8090"
    assert stand_ins["b"].redirect("http://h.example/a/b") == "https://[::1]/a/b"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("http://127.0.0.1:8090", "expected INTEGRATION=URL"),
        ("bad id=http://127.0.0.1:8090", "expected INTEGRATION=URL"),
        ("x=ftp://127.0.0.1", "http:// or https://"),
        ("x=http://", "http:// or https://"),
        ("x=http://u:p@127.0.0.1", "http:// or https://"),
        ("x=http://127.0.0.1:8090/v1", "only scheme, host and port"),
        ("x=http://127.0.0.1:8090?a=1", "only scheme, host and port"),
        ("x=http://127.0.0.1:99999", "cannot be parsed"),
    ],
)
def test_an_unusable_entry_is_refused_with_why(entry: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_stand_ins([entry])


def test_one_stand_in_per_integration() -> None:
    with pytest.raises(ValueError, match="has a stand-in already"):
        parse_stand_ins(["x=http://127.0.0.1:1", "x=http://127.0.0.1:2"])


async def test_the_policy_decides_whether_the_host_may_be_reached() -> None:
    (loopback,) = parse_stand_ins(["x=http://127.0.0.1:8090"]).values()
    with pytest.raises(PolicyRefused, match="loopback"):
        await check_stand_in(loopback, OutboundPolicy())
    await check_stand_in(loopback, OutboundPolicy.from_strings(allow=["127.0.0.1"]))
    denied = OutboundPolicy.from_strings(allow=["127.0.0.0/8"], deny=["127.0.0.1"])
    with pytest.raises(PolicyRefused, match="denied"):
        await check_stand_in(loopback, denied)
    (named,) = parse_stand_ins(["x=http://localhost:8090"]).values()
    await check_stand_in(named, OutboundPolicy.from_strings(allow=["localhost"]))


def test_the_setting_is_off_by_default_and_comes_from_flag_env_or_toml(tmp_path: Path) -> None:
    assert Settings().provider_stand_in == ()
    parser = build_parser()
    flags = parser.parse_args(["serve", "--provider-stand-in", "a=http://127.0.0.1:1"])
    assert load_settings(flags, environ={}).provider_stand_in == ("a=http://127.0.0.1:1",)
    env = {"MSGBRIDGE_PROVIDER_STAND_IN": "b=http://127.0.0.1:2"}
    assert load_settings({}, environ=env).provider_stand_in == ("b=http://127.0.0.1:2",)
    config = tmp_path / "msgbridge.toml"
    config.write_text('provider_stand_in = ["c=http://127.0.0.1:3"]\n', encoding="utf-8")
    settings = load_settings({}, environ={}, config_file=config)
    assert settings.provider_stand_in == ("c=http://127.0.0.1:3",)


def test_serve_refuses_an_unusable_stand_in_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["serve", "--data-dir", str(tmp_path / "d"), "--provider-stand-in", "x=/v1"]
    with pytest.raises(SettingsError, match=r"^provider_stand_in: 'x=/v1': "):
        load_settings(build_parser().parse_args(arguments), environ={})
    assert main(arguments) == 2
    assert capsys.readouterr().err.startswith("msgbridge serve: provider_stand_in: ")
    assert not (tmp_path / "d").exists()
