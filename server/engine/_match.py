"""Matching inbound webhooks to events (docs/format.md, "Webhook models").

:func:`match_webhook` parses the request (:func:`parse_webhook`), splits it into payloads — the
whole body, each element of a top-level JSON array (a batch), and for models with an ``each``
pointer each element of the lists found there (``*`` walking nested lists,
:mod:`._nested_each`) — and
gives every payload to the most specific model that matches it (a model's ``enclosing`` patterns
laid over the elements around its payload, once per element). The result holds the events in
order of pointer, then document order, and every payload that no model matched, with the models
that came closest and why they failed.

Each definition's models are compiled once (:mod:`._patterns`) and ranked by specificity, so
matching a payload is a walk down that ranking that stops at the first model that matches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from ._codecs import decode_value
from ._errors import DefinitionError, Problem
from ._event_values import (
    build_values,
    capture_filters,
    extra_fields,
    failed_pattern,
    filter_captures,
)
from ._filters import ValueFilter
from ._media_resolve import MEDIA_ID, media_id_url
from ._model import Definition, EventType, WebhookModel
from ._nested_each import MISSING, find_lists, pointer_steps, resolve
from ._parse import WebhookRequest, parse_webhook
from ._patterns import Captured, Captures, Pattern, compile_headers, compile_pattern, header_fields
from ._repeated import apply_repeated
from ._value_patterns import PatternSyntaxError, ValuePattern, compile_value_pattern

__all__ = [
    "InboundEvent",
    "MatchResult",
    "NearMiss",
    "UnmatchedPayload",
    "WebhookRequest",
    "match_webhook",
]

_NEAR_MISSES: Final = 3
# Explaining a payload costs a walk of every model's whole pattern, many times what matching it
# costs: a batch of 300,000 empty objects took 24 s to explain against a 12-model definition. The
# first ones show an operator what is wrong; the rest of such a request only say that nothing
# matched (docs/format.md, "Limits").
_EXPLAINED: Final = 100
_SURROGATES: Final = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundEvent:
    """One event from one payload, as the model that matched it describes."""

    type: EventType
    model: int  # index into definition.webhooks
    event_key: str
    # "" the whole body, "/3" a batch element, "/results/2" or "/entry/0/changes/1/value/
    # messages/2" under `each`
    payload_pointer: str
    from_number: str | None
    to_number: str | None
    text: str | None  # the `content` capture, else `text`
    media_urls: tuple[str, ...]  # the `url` capture(s), then (ext) `media_id`'s as media-id:
    provider_message_id: str | None  # `messageid`
    status: str | None
    error: str | None
    captures: Mapping[str, str | tuple[str, ...]]  # every capture that has a value, by name
    # (ext) the captures (built values included) the model keeps ("Built values, …")
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, kw_only=True, slots=True)
class NearMiss:
    """A model that did not match a payload: what failed first, and how much did hold."""

    model: int
    event_key: str
    reason: str  # e.g. "/params/url: key missing" or "method GET, model wants POST"
    matched_constraints: int


@dataclass(frozen=True, kw_only=True, slots=True)
class UnmatchedPayload:
    """A payload that no model matched; kept so that an operator can see it."""

    payload_pointer: str
    reason: str  # one plain sentence
    near_misses: tuple[NearMiss, ...]  # closest first, at most 3


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchResult:
    events: tuple[InboundEvent, ...]
    unmatched: tuple[UnmatchedPayload, ...]


# --- compiling a definition's models, once -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Enclosing:
    """(ext) One ``enclosing`` pattern of a model: laid over the node ``depth`` tokens down the
    payload's concrete pointer (docs/format.md, "Nested lists")."""

    depth: int
    pattern: Pattern


@dataclass(frozen=True, slots=True)
class _CompiledModel:
    position: int  # index into definition.webhooks
    model: WebhookModel
    pattern: Pattern
    headers: Pattern | None  # (ext) the model's request_headers
    # (ext) the model's `absent` pointers, each split into its tokens once: splitting a long
    # pointer for every payload made a 600 KB pointer cost 35 s over a batch of 20,000
    absent: tuple[tuple[str, tuple[str, ...] | None], ...]
    # (ext) the model's validation patterns, compiled once
    patterns: Mapping[str, ValuePattern]
    # (ext) each capture's value filters ("Value filters"), parsed once
    filters: Mapping[str, tuple[ValueFilter, ...]]
    # (ext) the model's `enclosing` patterns, nearest the payload first
    enclosing: tuple[_Enclosing, ...] = ()

    @property
    def constraints(self) -> int:
        extra = self.headers.constraints if self.headers else 0
        extra += sum(e.pattern.constraints for e in self.enclosing)
        return self.pattern.constraints + extra + len(self.model.absent)

    @property
    def captures(self) -> int:
        extra = sum(e.pattern.captures for e in self.enclosing)
        return self.pattern.captures + (self.headers.captures if self.headers else 0) + extra


@dataclass(frozen=True, slots=True)
class _Group:
    """The models that share one ``each`` pointer (None: the body or its batch elements)."""

    each: str | None
    ranked: tuple[_CompiledModel, ...]  # most literal constraints, most captures, file order
    in_file_order: tuple[_CompiledModel, ...]
    steps: tuple[str, ...] | None = None  # the tokens of `each`, "*" for every element
    # (ext) the depths the models' `enclosing` patterns read, shallowest first: the nodes kept
    # for each payload, in this order
    depths: tuple[int, ...] = ()


class _ByIdentity:
    """A cache key that is one particular Definition object.

    Definitions hold read-only mappings, so they are not hashable, and their slots leave no room
    for a weak reference. This key hashes by identity and holds the definition strongly: while an
    entry is in the cache its definition stays alive, so its id cannot be reused by another
    object, and an evicted entry is simply gone.
    """

    __slots__ = ("definition",)

    def __init__(self, definition: Definition) -> None:
        self.definition = definition

    def __hash__(self) -> int:
        return id(self.definition)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.definition is self.definition


@functools.lru_cache(maxsize=256)
def _compile(key: _ByIdentity) -> tuple[_Group, ...]:
    compiled: list[_CompiledModel] = []
    for position, model in enumerate(key.definition.webhooks):
        try:
            pattern = compile_pattern(model.parameters, model.event_key)
            headers = compile_headers(model.headers, model.event_key)
            enclosing = _compile_enclosing(model)
        except RecursionError:
            problem = Problem(
                pointer=f"{model.pointer}/request_parameters",
                message="the pattern is nested too deeply",
            )
            raise DefinitionError((problem,)) from None
        absent = tuple((at, pointer_steps(at)) for at in model.absent)
        compiled.append(
            _CompiledModel(
                position=position,
                model=model,
                pattern=pattern,
                headers=headers,
                absent=absent,
                patterns=_value_patterns(model),
                filters=capture_filters(_pattern_strings(model)),
                enclosing=enclosing,
            )
        )
    pointers = sorted({c.model.each for c in compiled}, key=lambda p: (p is not None, p or ""))
    groups = []
    for each in pointers:
        members = tuple(c for c in compiled if c.model.each == each)
        ranked = sorted(
            members,
            key=lambda c: (-c.constraints, -c.captures, c.position),
        )
        depths = sorted({e.depth for c in members for e in c.enclosing})
        groups.append(
            _Group(
                each=each,
                ranked=tuple(ranked),
                in_file_order=members,
                steps=None if each is None else pointer_steps(each),
                depths=tuple(depths),
            )
        )
    return tuple(groups)


def _compile_enclosing(model: WebhookModel) -> tuple[_Enclosing, ...]:
    """(ext) The model's ``enclosing`` patterns, nearest the payload (deepest) first. The loader
    has refused a pointer that is not a shorter prefix of ``each``; a model built otherwise
    with one is refused here, since it would read another node (docs/format.md, "Nested
    lists")."""
    each = pointer_steps(model.each) if model.each is not None else None
    found = []
    for at, tree in model.enclosing.items():
        steps = pointer_steps(at)
        if each is None or steps is None or len(steps) >= len(each) or each[: len(steps)] != steps:
            problem = Problem(
                pointer=f"{model.pointer}/enclosing",
                message=f"{at!r} is not an element around the payloads of each",
            )
            raise DefinitionError((problem,))
        found.append(_Enclosing(depth=len(steps), pattern=compile_pattern(tree, model.event_key)))
    return tuple(sorted(found, key=lambda e: -e.depth))


def _pattern_strings(model: WebhookModel) -> Iterator[str]:
    """The model's pattern strings: its parameters' string leaves, then its header patterns,
    then (ext) its ``enclosing`` patterns' string leaves."""
    yield from _tree_strings(model.parameters)
    yield from model.headers.values()
    for tree in model.enclosing.values():
        yield from _tree_strings(tree)


def _tree_strings(tree: object) -> Iterator[str]:
    stack: list[object] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, Mapping):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, tuple | list):
            stack.extend(reversed(node))


def _value_patterns(model: WebhookModel) -> Mapping[str, ValuePattern]:
    """(ext) The model's validation patterns; the loader has refused a definition with a bad one."""
    compiled = {}
    for name, source in model.patterns.items():
        try:
            compiled[name] = compile_value_pattern(source)
        except PatternSyntaxError as e:
            problem = Problem(pointer=f"{model.pointer}/patterns/{name}", message=str(e))
            raise DefinitionError((problem,)) from None
    return MappingProxyType(compiled)


# --- matching -------------------------------------------------------------------------------------


def match_webhook(definition: Definition, request: WebhookRequest) -> MatchResult:
    """The events in ``request``, and the payloads that no model matched.

    Raises WebhookParseError when the body cannot be parsed; never anything but an EngineError.
    """
    body = parse_webhook(request)
    groups = _compile(_ByIdentity(definition))
    if not groups:
        nothing = UnmatchedPayload(
            payload_pointer="",
            reason="the integration defines no webhook models",
            near_misses=(),
        )
        return MatchResult(events=(), unmatched=(nothing,))
    method = request.method.upper()
    headers = header_fields(request.headers)

    outcomes: list[tuple[_Group, bool, list[InboundEvent], list[_Payload]]] = []
    for group in groups:
        payloads = _payloads(body, group)
        events: list[InboundEvent] = []
        misses: list[_Payload] = []
        # (ext) each enclosing element is matched once per model, however many payloads it
        # holds (docs/format.md, "Limits": linear cost)
        seen: _Seen = {}
        for payload in payloads or ():
            event = _match_payload(group, method, headers, payload, seen)
            if event is None:
                misses.append(payload)
            else:
                events.append(event)
                # (ext) the other events the same payload gives ("More event types")
                also = definition.webhooks[event.model].also
                events.extend(replace(event, type=t) for t in also)
        outcomes.append((group, payloads is not None, events, misses))

    all_events = tuple(event for _, _, events, _ in outcomes for event in events)
    unmatched: list[UnmatchedPayload] = []
    for group, found, events, misses in outcomes:
        # A payload no model matches is never dropped (docs/format.md, "Unmatched payloads").
        # The elements of an `each` list are such payloads whenever the list is there. The body
        # as a whole is one only when nothing in it produced an event: a batch's body is not
        # also a plain message.
        if events or not all_events or (group.each is not None and found):
            for miss in misses:
                if len(unmatched) < _EXPLAINED:
                    unmatched.append(_unmatched(group, method, headers, miss))
                else:
                    unmatched.append(_unexplained(miss.pointer))
        if not all_events and not found:
            unmatched.append(_no_batch(group))
    return MatchResult(events=all_events, unmatched=tuple(unmatched))


@dataclass(frozen=True, slots=True)
class _Payload:
    pointer: str  # its concrete place in the body
    value: object
    # (ext) the nodes enclosing it at the group's `depths`, shallowest first
    enclosing: tuple[object, ...] = ()


#: (ext) The captures of an ``enclosing`` pattern over one node, by (model, depth, node's id);
#: None when it did not match. The body outlives the dictionary, so an id names one node.
_Seen = dict[tuple[int, int, int], "Captures | None"]


def _payloads(body: object, group: _Group) -> list[_Payload] | None:
    """The payloads a group matches, with their pointers; None when ``each`` names no list."""
    if group.each is None:
        if isinstance(body, list):
            return [_Payload(f"/{i}", element) for i, element in enumerate(body)]
        return [_Payload("", body)]
    if group.steps is None:
        return None
    lists = find_lists(body, group.steps, frozenset(group.depths))
    if not lists:
        return None
    return [
        _Payload(f"{at}/{i}", element, kept)
        for at, found, kept in lists
        for i, element in enumerate(found)
    ]


def _enclosing_captures(
    group: _Group, candidate: _CompiledModel, found: _Payload, seen: _Seen, out: Captures
) -> bool:
    """(ext) Lay the model's ``enclosing`` patterns over the nodes that enclose the payload,
    adding their captures after the payload's own; False when one does not match."""
    for enclosing in candidate.enclosing:
        node = found.enclosing[group.depths.index(enclosing.depth)]
        key = (candidate.position, enclosing.depth, id(node))
        if key in seen:
            captured = seen[key]
        else:
            fresh: Captures = {}
            captured = fresh if enclosing.pattern.match(node, fresh) else None
            seen[key] = captured
        if captured is None:
            return False
        for name, value in captured.items():
            out.setdefault(name, value)
    return True


def _match_payload(
    group: _Group, method: str, headers: dict[str, str], found: _Payload, seen: _Seen
) -> InboundEvent | None:
    for candidate in group.ranked:
        if candidate.model.method != method:
            continue
        captures: Captures = {}
        # (ext) the value of a repeated field the model reads ("Webhook bodies")
        payload = apply_repeated(candidate.model.repeated, found.value)
        if not candidate.pattern.match(payload, captures) or _present(candidate, payload):
            continue
        if candidate.enclosing and not _enclosing_captures(group, candidate, found, seen, captures):
            continue
        # The body's captures come first: a name captured in both keeps the body's value.
        if (
            (candidate.headers is None or candidate.headers.match(headers, captures))
            and _cleaned(candidate, captures) is None
            and failed_pattern(candidate.patterns, captures) is None
        ):
            return _event(candidate, found.pointer, captures)
    return None


def _cleaned(candidate: _CompiledModel, captures: Captures) -> str | None:
    """(ext) The captures decoded, then through their value filters, in place; the reason when
    one does not decode ("Value filters": decode, filters, patterns, build)."""
    reason = _decode(candidate.model, captures)
    if reason is None and candidate.filters:
        filter_captures(candidate.filters, captures)
    return reason


def _decode(model: WebhookModel, captures: Captures) -> str | None:
    """(ext) Decode the captures the model's ``decode`` names, in place; the reason when one is
    not in its declared encoding (docs/format.md, "Text encodings")."""
    for name, encoding in model.decode.items():
        value = captures.get(name)
        if value is None:
            continue
        try:
            if isinstance(value, tuple):
                captures[name] = tuple(decode_value(encoding, v) for v in value)
            else:
                captures[name] = decode_value(encoding, value)
        except ValueError as e:
            return f"${name}$ is not {encoding}: {e}"
    return None


def _present(candidate: _CompiledModel, payload: object) -> list[str]:
    """The model's ``absent`` pointers that the payload has (ext)."""
    return [at for at, steps in candidate.absent if resolve(payload, steps) is not MISSING]


def _clean(value: Captured) -> Captured:
    """Text that encodes as UTF-8: lone surrogates (JSON ``"\\ud800"``) become U+FFFD."""
    if isinstance(value, tuple):
        return tuple(_clean_text(v) for v in value)
    return _clean_text(value)


def _clean_text(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


def _first(value: Captured | None) -> str | None:
    """The scalar value of a capture: a list capture's first element."""
    if value is None or isinstance(value, str):
        return value
    return value[0] if value else None


def _event(candidate: _CompiledModel, pointer: str, raw: Captures) -> InboundEvent:
    # (ext) built values read the captures as matched and decoded ("Built values, …")
    built = build_values(candidate.model.build, raw)
    captures = {name: _clean(value) for name, value in built.items()}
    urls = captures.get("url")
    media_urls = (urls,) if isinstance(urls, str) else (urls or ())
    # (ext) files named by id come after those named by URL ("Media given as an id")
    ids = captures.get(MEDIA_ID)
    ids = (ids,) if isinstance(ids, str) else ids or ()
    media_urls += tuple(media_id_url(i) for i in ids if i)
    text = _first(captures.get("content"))
    if text is None:
        text = _first(captures.get("text"))
    model = candidate.model
    return InboundEvent(
        type=model.event_type,
        model=candidate.position,
        event_key=model.event_key,
        payload_pointer=pointer,
        from_number=_first(captures.get("from")),
        to_number=_first(captures.get("to")),
        text=text,
        media_urls=media_urls,
        provider_message_id=_first(captures.get("messageid")),
        status=_first(captures.get("status")),
        error=_first(captures.get("error")),
        captures=MappingProxyType(captures),
        fields=extra_fields(model.keep, captures),
    )


# --- explaining what did not match ---------------------------------------------------------------


def _near_miss(
    group: _Group,
    candidate: _CompiledModel,
    method: str,
    headers: dict[str, str],
    found: _Payload,
) -> tuple[NearMiss, int, str]:
    model = candidate.model
    payload = apply_repeated(model.repeated, found.value)  # (ext) as _match_payload reads it
    held, failures = candidate.pattern.explain(payload, "")
    present = _present(candidate, payload)
    failures.extend(f"{at}: must be absent" for at in present)
    held += len(model.absent) - len(present)
    for enclosing in candidate.enclosing:  # (ext) "Nested lists": at the enclosing node's place
        node = found.enclosing[group.depths.index(enclosing.depth)]
        place = "".join(f"/{t}" for t in found.pointer.split("/")[1 : enclosing.depth + 1])
        enclosing_held, enclosing_failures = enclosing.pattern.explain(node, place)
        held += enclosing_held
        failures.extend(enclosing_failures)
    if candidate.headers is not None:
        headers_held, header_failures = candidate.headers.explain(headers, "")
        held += headers_held
        failures.extend(header_failures)
    if model.method != method:
        failures.insert(0, f"method {method}, model wants {model.method}")
    if not failures and model.decode:
        captures = _captures(group, candidate, headers, found, payload)
        reason = _decode(model, captures)
        if reason is not None:
            failures.append(reason)
    if not failures and candidate.patterns:
        captures = _captures(group, candidate, headers, found, payload)
        if _cleaned(candidate, captures) is None:
            reason = failed_pattern(candidate.patterns, captures)
            if reason is not None:
                failures.append(reason)
    if not failures:  # cannot happen for a payload that did not match; keep the report sane
        failures.append("does not match")
    reason = failures[0]
    if len(failures) > 1:
        more = len(failures) - 1
        reason += f" (and {more} more problem{'s' if more > 1 else ''})"
    miss = NearMiss(
        model=candidate.position,
        event_key=model.event_key,
        reason=reason,
        matched_constraints=held,
    )
    return miss, len(failures), model.pointer


def _captures(
    group: _Group,
    candidate: _CompiledModel,
    headers: dict[str, str],
    found: _Payload,
    payload: object,
) -> Captures:
    """The captures of a model whose patterns all hold, as _match_payload takes them."""
    captures: Captures = {}
    candidate.pattern.match(payload, captures)
    _enclosing_captures(group, candidate, found, {}, captures)
    if candidate.headers is not None:
        candidate.headers.match(headers, captures)
    return captures


def _unmatched(
    group: _Group, method: str, headers: dict[str, str], found: _Payload
) -> UnmatchedPayload:
    pointer = found.pointer
    scored = [_near_miss(group, c, method, headers, found) for c in group.in_file_order]
    scored.sort(key=lambda s: (-s[0].matched_constraints, s[1], s[0].model))
    scored = scored[:_NEAR_MISSES]
    closest = tuple(miss for miss, _, _ in scored)
    summary = "; ".join(f"{m.event_key!r} ({where}) fails: {m.reason}" for m, _, where in scored)
    return UnmatchedPayload(
        payload_pointer=pointer,
        reason=f"no webhook model matches this payload; closest: {summary}",
        near_misses=closest,
    )


def _unexplained(pointer: str) -> UnmatchedPayload:
    return UnmatchedPayload(
        payload_pointer=pointer,
        reason=f"no webhook model matches this payload (the first {_EXPLAINED} unmatched "
        "payloads of a request say why)",
        near_misses=(),
    )


def _no_batch(group: _Group) -> UnmatchedPayload:
    keys = ", ".join(repr(c.model.event_key) for c in group.in_file_order)
    return UnmatchedPayload(
        payload_pointer=group.each or "",
        reason=f"the body has no list at {group.each}, where the models {keys} find their batch",
        near_misses=(),
    )
