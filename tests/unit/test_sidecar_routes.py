"""The sidecar's route table: the paths the sidecar forwards are the paths the core reads."""

from __future__ import annotations

import pytest

from server.sidecar import (
    FORWARDED_PATHS,
    OAUTH_CALLBACK_PATH,
    is_oauth_callback,
    kept_webhook_path,
    webhook_path,
    webhook_target,
)


def test_every_forwarded_path_is_read_by_the_core() -> None:
    filled = [p.format(integration_id="acme-sms", token="t0k3n") for p in FORWARDED_PATHS]
    assert [webhook_target(p) for p in filled] == [("acme-sms", "t0k3n"), ("acme-sms", None), None]
    assert [is_oauth_callback(p) for p in filled] == [False, False, True]


def test_webhook_paths_round_trip() -> None:
    assert webhook_target(webhook_path("acme-sms", "t0k3n")) == ("acme-sms", "t0k3n")
    assert webhook_target(webhook_path("acme-sms")) == ("acme-sms", None)


@pytest.mark.parametrize(
    "path",
    ["/", "/webhooks", "/webhooks/", "/webhooks//t", "/webhooks/a/b/c", "/hooks/a", "/healthz"],
)
def test_other_paths_are_not_webhooks(path: str) -> None:
    assert webhook_target(path) is None


def test_a_slash_more_at_either_end_is_tolerated() -> None:
    assert webhook_target("/webhooks/acme-sms/") == ("acme-sms", None)
    assert is_oauth_callback(OAUTH_CALLBACK_PATH + "/")
    assert not is_oauth_callback("/oauth/callback/x")


def test_the_kept_path_never_holds_the_token() -> None:
    assert kept_webhook_path("acme-sms", with_token=True) == "/webhooks/acme-sms/…"
    assert kept_webhook_path("acme-sms", with_token=False) == "/webhooks/acme-sms"
