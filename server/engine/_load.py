"""Loading and validating definitions (spec §1–§7). Placeholder module: being written."""

from __future__ import annotations

from typing import Any

from ._errors import Problem
from ._model import Definition

__all__ = ["check_definition", "load_definition"]


def load_definition(data: bytes | str | Any) -> Definition:
    raise NotImplementedError


def check_definition(data: bytes | str | Any) -> tuple[Problem, ...]:
    raise NotImplementedError
