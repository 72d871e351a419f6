"""Parsing and matching webhooks (spec §6). Placeholder module: being written."""

from __future__ import annotations

from dataclasses import dataclass

from ._model import Definition

__all__ = ["MatchResult", "WebhookRequest", "match_webhook"]


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookRequest:
    method: str
    content_type: str | None
    body: bytes
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchResult:
    pass


def match_webhook(definition: Definition, request: WebhookRequest) -> MatchResult:
    raise NotImplementedError
