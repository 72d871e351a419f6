"""(ext) The messaging platforms' send failures through ``response_rules`` (docs/format.md,
"response_rules", its messaging examples): each answer as the platform documents it becomes a
gRPC code and reason a caller can act on — a recipient who blocked the bot is opted out, a closed
conversation window asks for a template, a rate limit says when to try again (from the body when
the platform puts it there)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from server.core._provider_failures import Accepted, judge_send_answer, nothing_sent
from server.engine import check_definition, load_definition
from server.errors import GatewayError
from server.outbound import ProviderResponse
from server.security.secrets import SecretMask

TEMPLATE = json.loads((Path(__file__).parents[2] / "integrations/template.json").read_text())
NO_SECRETS = SecretMask.of(())

# The errors entries docs/format.md gives for these platforms.
RULES = {
    "errors": [
        {
            "status": [403],
            "when": {
                "pointer": "/description",
                "one_of": ["Forbidden: bot was blocked by the user"],
            },
            "outcome": "opted_out",
        },
        {
            "status": [400],
            "when": {"pointer": "/error/code", "one_of": [131047]},
            "outcome": "outside_window",
        },
        {
            "status": [400],
            "when": {"pointer": "/error/code", "one_of": [130429, 131056]},
            "outcome": "throttled",
        },
        {"status": [429], "outcome": "throttled", "retry_after": "/parameters/retry_after"},
    ]
}


def _document(rules: Any = RULES) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(TEMPLATE)
    doc["API"]["SendMessage"]["response_rules"] = copy.deepcopy(rules)
    return doc


def _judge(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    template = load_definition(_document()).send_message
    answer = ProviderResponse(
        status=status,
        headers=headers or {"content-type": "application/json"},
        body=json.dumps(body).encode(),
        elapsed_s=0.01,
    )
    return judge_send_answer(template, answer, integration="m", secrets=lambda: NO_SECRETS)


def test_the_rules_check_clean() -> None:
    assert [p for p in check_definition(_document()) if p.severity == "error"] == []


def test_telegram_bot_blocked_by_the_user_is_an_opt_out() -> None:
    error = _judge(
        403,
        {
            "ok": False,
            "error_code": 403,
            "description": "Forbidden: bot was blocked by the user",
        },
    )
    assert isinstance(error, GatewayError)
    assert (error.grpc_code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RECIPIENT_OPTED_OUT",
    )
    assert error.metadata["provider_code"] == "Forbidden: bot was blocked by the user"
    assert not nothing_sent(error)


def test_another_telegram_403_stays_a_credentials_failure() -> None:
    error = _judge(403, {"ok": False, "error_code": 403, "description": "Forbidden: other"})
    assert isinstance(error, GatewayError)
    assert error.reason == "PROVIDER_CREDENTIALS"


def test_whatsapp_outside_the_24_hour_window_asks_for_a_template() -> None:
    body = {
        "error": {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed "
                "since the customer last replied to this number.",
            },
            "fbtrace_id": "AbCdEf",
        }
    }
    error = _judge(400, body)
    assert isinstance(error, GatewayError)
    assert (error.grpc_code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TEMPLATE_REQUIRED",
    )
    assert error.metadata["outcome"] == "outside_window"
    assert error.metadata["provider_code"] == "131047"
    assert "only a template message reaches them" in error.message
    assert error.retry_after_s is None and not nothing_sent(error)


def test_telegram_429_waits_the_seconds_its_body_gives() -> None:
    body = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 35",
        "parameters": {"retry_after": 35},
    }
    error = _judge(429, body)
    assert isinstance(error, GatewayError)
    assert (error.grpc_code, error.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "PROVIDER_RATE_LIMITED",
    )
    assert error.retry_after_s == 35.0
    assert nothing_sent(error)


def test_the_body_s_wait_comes_before_the_header_and_the_header_is_the_fallback() -> None:
    headers = {"content-type": "application/json", "retry-after": "7"}
    both = _judge(429, {"parameters": {"retry_after": 3}}, headers)
    assert isinstance(both, GatewayError) and both.retry_after_s == 3.0
    header_only = _judge(429, {"ok": False}, headers)
    assert isinstance(header_only, GatewayError) and header_only.retry_after_s == 7.0


@pytest.mark.parametrize("value", ["soon", -1, 1e9, None, {"s": 1}, "nan"])
def test_a_wait_that_is_not_seconds_is_not_taken(value: Any) -> None:
    error = _judge(429, {"parameters": {"retry_after": value}})
    assert isinstance(error, GatewayError)
    assert error.retry_after_s is None
    assert error.reason == "PROVIDER_RATE_LIMITED"


def test_whatsapp_rate_limit_codes_are_throttled() -> None:
    error = _judge(400, {"error": {"code": 130429, "message": "Rate limit hit"}})
    assert isinstance(error, GatewayError)
    assert error.reason == "PROVIDER_RATE_LIMITED" and nothing_sent(error)


def test_a_success_is_still_a_success() -> None:
    assert isinstance(_judge(200, {"ok": True, "result": {"message_id": 1}}), Accepted)


def test_check_refuses_retry_after_on_an_outcome_that_is_not_retried() -> None:
    rules = {"errors": [{"status": [400], "outcome": "outside_window", "retry_after": "/x"}]}
    problems = [
        (p.pointer, p.message) for p in check_definition(_document(rules)) if p.severity == "error"
    ]
    assert problems == [
        (
            "/API/SendMessage/response_rules/errors/0/retry_after",
            "retry_after says how long to wait before sending again: only a throttled or "
            "unavailable outcome sends again",
        )
    ]


def test_schema_refuses_a_retry_after_that_is_not_a_pointer() -> None:
    rules = {"errors": [{"status": [429], "outcome": "throttled", "retry_after": "retry_after"}]}
    problems = [p.pointer for p in check_definition(_document(rules)) if p.severity == "error"]
    assert problems == ["/API/SendMessage/response_rules/errors/0/retry_after"]
