"""Rendering requests (spec §2–§4). Placeholder module: being written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._model import Definition, RequestTemplate

__all__ = ["RenderedRequest", "Value", "render_request"]

Value = str | tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderedRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


def render_request(
    definition: Definition,
    template: RequestTemplate,
    variables: Mapping[str, Value],
    *,
    bearer_token: str | None = None,
    boundary: str | None = None,
    masked: bool = False,
) -> RenderedRequest:
    raise NotImplementedError
