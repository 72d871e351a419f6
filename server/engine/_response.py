"""Mapping a provider's answer (spec §5). Placeholder module: being written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._model import Frozen

__all__ = ["ResponseOutcome", "map_response"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseOutcome:
    accepted: bool
    message_id: str | None
    error: str | None
    captures: Mapping[str, str | tuple[str, ...]]


def map_response(
    response_map: Frozen, body: bytes, content_type: str | None = None
) -> ResponseOutcome:
    raise NotImplementedError
