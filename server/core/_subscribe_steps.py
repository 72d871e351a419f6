"""What a Subscribe or Unsubscribe run does, step by step, without making a call (docs/format.md,
"Subscribe and Unsubscribe", "Look up before create", "Values Subscribe keeps").

The gateway's :class:`~server.core.SubscriptionKeeper` and ``msgbridge test``'s offline run both
drive a run with these functions, so that what a case proves offline is what the gateway does:

- :func:`next_step`: which request is made next — the next of the list, once per assigned number
  when it uses ``$number$`` or a per-number capture, skipped when its ``only_if`` does not hold —
  and with which variables (the gateway's, the shared kept values, the number's own);
- :func:`judge_step_answer`: what a step's answer captures (its ``find``, its ``response_map``),
  or why it fails the step;
- :class:`Kept`: the captures, shared and per number, kept for the later steps, the next run and
  ``Unsubscribe``.

A driver keeps the numbers it runs for (:meth:`Kept.retain`), then repeats: ``next_step``,
:func:`render_step`, make the request, ``judge_step_answer``, :meth:`Kept.record` — until
``next_step`` gives None or a step fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine import (
    Definition,
    EngineError,
    RenderedRequest,
    RequestTemplate,
    Value,
    find_in_answer,
    map_response,
    only_if_holds,
    render_request,
    response_variables,
    template_variables,
)
from ..errors import GatewayError
from ..outbound import ProviderResponse
from ..security.secrets import SecretMask
from ._provider_failures import EXCERPT, from_http_response, from_refusal

__all__ = [
    "Kept",
    "StepFailure",
    "SubscribeRun",
    "SubscribeStep",
    "judge_step_answer",
    "next_step",
    "numbered_after",
    "render_step",
]

#: The variables whose value depends on the number before any request: ``$number$``.
NUMBER_ONLY = frozenset({"number"})


@dataclass(kw_only=True, slots=True)
class Kept:
    """What Subscribe keeps per installation, sealed whole and never logged or returned
    (docs/format.md, "Values Subscribe keeps"): a digest of the values its last success depended
    on, and the values its requests captured — shared, and per number — for its next run and for
    Unsubscribe."""

    fingerprint: str | None = None
    shared: dict[str, Value] = field(default_factory=dict)
    numbers: dict[str, dict[str, Value]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> Kept:
        data = json.loads(text) if text else {}
        return cls(
            fingerprint=data.get("fingerprint"),
            shared=_values(data.get("shared", {})),
            numbers={n: _values(v) for n, v in data.get("numbers", {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {"fingerprint": self.fingerprint, "shared": self.shared, "numbers": self.numbers},
            sort_keys=True,
        )

    def keep(self, name: str, value: Value, number: str | None) -> None:
        """Record a capture of this run; None (a search that found nothing) forgets it."""
        values = self.shared if number is None else self.numbers.setdefault(number, {})
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value

    def record(self, captures: Mapping[str, Value], number: str | None) -> None:
        """Record every capture of one step (made for ``number``, or once)."""
        for name, value in captures.items():
            self.keep(name, value, number)

    def retain(self, numbers: Iterable[str]) -> None:
        """Drop the values of the numbers no longer assigned (docs/format.md, "Values Subscribe
        keeps"): a run starts with this."""
        assigned = set(numbers)
        self.numbers = {n: v for n, v in self.numbers.items() if n in assigned}


def _values(data: Mapping[str, Any]) -> dict[str, Value]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class SubscribeRun:
    """One run of a request list: the requests, the gateway's variables (the installation's
    properties, ``$webhook_url$``, ``$orgid$``), the assigned numbers in order, and the variables
    that depend on the number before the first request (for Unsubscribe, also what Subscribe
    captured per number: :func:`numbered_after`)."""

    requests: tuple[RequestTemplate, ...]
    gateway: Mapping[str, Value]
    numbers: tuple[str, ...]
    numbered: frozenset[str] = NUMBER_ONLY


@dataclass(frozen=True, kw_only=True, slots=True)
class SubscribeStep:
    """One request to make: the ``index``-th of the list (from 1), for ``number`` (the
    ``slot``-th assigned number) or once (None, slot 0), rendered with ``variables``."""

    index: int
    slot: int
    number: str | None
    template: RequestTemplate
    variables: Mapping[str, Value]

    @property
    def where(self) -> str:
        """How a failure names the step."""
        return f"request {self.index} ({self.template.pointer})"


@dataclass(frozen=True, slots=True)
class StepFailure:
    """Why a step failed — the text the installation keeps (secrets masked) — and the
    provider's failure as a send would report it, when there is one."""

    text: str
    error: GatewayError | None = None


def next_step(run: SubscribeRun, kept: Kept, after: SubscribeStep | None) -> SubscribeStep | None:
    """The step made after ``after`` (None: the run's first), or None when the run is over.

    A request that uses a variable of ``run.numbered`` — or a capture of a per-number request
    before it — is made once per number with that number's kept values; any other once with the
    shared ones. A step whose ``only_if`` does not hold is skipped (docs/format.md, "Look up
    before create"). The variables are read from ``kept`` now: record each step's captures
    before asking for the next."""
    numbered = run.numbered
    start = (0, 0) if after is None else (after.index - 1, after.slot + 1)
    for position, template in enumerate(run.requests):
        per_number = bool(template_variables(template) & numbered)
        if per_number:
            numbered |= response_variables(template)
        if position < start[0]:
            continue
        slots: tuple[str | None, ...] = run.numbers if per_number else (None,)
        for slot in range(start[1] if position == start[0] else 0, len(slots)):
            number = slots[slot]
            scope = {**kept.shared, **run.gateway}
            if number is not None:
                scope |= {**kept.numbers.get(number, {}), "number": number}
            if only_if_holds(template, scope):
                return SubscribeStep(
                    index=position + 1,
                    slot=slot,
                    number=number,
                    template=template,
                    variables=scope,
                )
    return None


def numbered_after(requests: tuple[RequestTemplate, ...]) -> frozenset[str]:
    """The variables whose value depends on the number after ``requests``: ``$number$`` and what
    a request made per number captures."""
    numbered = NUMBER_ONLY
    for template in requests:
        if template_variables(template) & numbered:
            numbered |= response_variables(template)
    return numbered


def render_step(
    definition: Definition,
    step: SubscribeStep,
    *,
    bearer: str | None,
    region: str | None,
    secrets: SecretMask,
) -> RenderedRequest | StepFailure:
    """The step's request, or why it cannot be built (the engine's error, secrets masked)."""
    try:
        return render_request(
            definition, step.template, step.variables, bearer_token=bearer, default_region=region
        )
    except EngineError as exc:
        return StepFailure(f"{step.where} cannot be built: {secrets(str(exc))}")


def judge_step_answer(
    step: SubscribeStep, response: ProviderResponse, *, integration: str, secrets: SecretMask
) -> dict[str, Value] | StepFailure:
    """What the step's answer captures for the steps after it (None: a search found nothing),
    or why it fails the step: a non-2xx status, a search's list missing (docs/format.md, "Look
    up before create"), a ``response_map`` that refuses it, a capture it lacks."""
    where, template = step.where, step.template
    if not 200 <= response.status < 300:
        failure = from_http_response(response, integration=integration, secrets=secrets)
        said = f": {failure.excerpt}" if failure.excerpt else ""
        return StepFailure(f"{where} answered HTTP {response.status}{said}", failure)
    content_type = response.headers.get("content-type")
    found = find_in_answer(template.find, response.body, content_type, step.variables)
    if found.problem is not None:
        return StepFailure(f"{where}: {found.problem}")
    if template.response_map is None:
        return dict(found.values)
    outcome = map_response(template.response_map, response.body, content_type)
    if not outcome.accepted:
        reason = outcome.error or outcome.reason or "the answer is not the expected one"
        refusal = from_refusal(
            response, refused=outcome.error, integration=integration, secrets=secrets
        )
        return StepFailure(f"{where} was refused: {secrets.excerpt(reason, EXCERPT)}", refusal)
    mapped = response_variables(template) - found.values.keys()
    missing = sorted(mapped - outcome.captures.keys())
    if missing:
        names = ", ".join(f"${name}$" for name in missing)
        return StepFailure(f"{where}: the answer does not contain {names}")
    return {**found.values, **{name: outcome.captures[name] for name in mapped}}
