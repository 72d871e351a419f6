"""The engine's exceptions. The engine raises nothing else, whatever its input.

EngineError
 ├── DefinitionError     a definition has errors; ``problems`` lists every one of them
 ├── RenderError         a request cannot be rendered from these variables
 └── WebhookParseError   a webhook body cannot be parsed (the sidecar answers 400)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DefinitionError", "EngineError", "Problem", "RenderError", "WebhookParseError"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One problem in a definition: where it is (a JSON Pointer) and what is wrong."""

    pointer: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class EngineError(Exception):
    """Base of every error the engine raises."""


class DefinitionError(EngineError):
    """A definition could not be loaded. ``problems`` holds every error and warning found."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        errors = self.errors
        first = str(errors[0]) if errors else "invalid definition"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}")

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")


class RenderError(EngineError):
    """A request cannot be rendered, e.g. a host placeholder whose value is not a host name."""

    def __init__(self, message: str, *, pointer: str = "") -> None:
        self.pointer = pointer
        super().__init__(message)


class WebhookParseError(EngineError):
    """A webhook body cannot be parsed as its content type says (answered 400)."""
