"""Properties of the matcher (hypothesis).

- For any webhook model, a payload rendered from it with random values is matched back to that
  model with exactly those values (JSON bodies, batches, and flat form / multipart bodies).
- A mixed string matches exactly as an anchored regex with non-greedy groups would.
- Random JSON, bytes, content types, form fields, queries and header sets never make
  match_webhook raise anything but an EngineError, and each costs little: a deadline generous
  for a busy machine catches a matcher that backtracks or walks a payload more than once.
"""

from __future__ import annotations

import encodings.aliases
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from _webhook_models import definition, model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import Definition, EngineError, WebhookRequest, match_webhook
from server.engine._patterns import compile_pattern

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- pattern shapes ----------
# A shape is a pattern tree before capture names are given out; names are assigned in order so
# that no name is captured twice. The first names are the ones that feed event fields.

WELL_KNOWN = ["from", "to", "content", "text", "url", "messageid", "status", "error"]


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class EventKey:
    pass


@dataclass(frozen=True)
class Cap:
    optional: bool = False


@dataclass(frozen=True)
class Mixed:
    literals: tuple[str, ...]  # literal parts; a placeholder goes between each pair
    leading: bool  # a placeholder before the first literal
    trailing: bool  # a placeholder after the last literal


@dataclass(frozen=True)
class Dict:
    entries: tuple[tuple[str, Any], ...]
    stars: tuple[tuple[str, Any], ...]  # prefix → Lit or Cap


@dataclass(frozen=True)
class List:
    item: Any


KEYS = st.text(alphabet="abcdefgh", min_size=3, max_size=3)
LITERALS = st.one_of(
    st.sampled_from(["message", "delivered", "2", "0", "17", "true", "false", "sms.in", ""]),
    st.text(alphabet="abcdefghij.-_ ", max_size=8),
)
MIXED_LITERALS = st.text(alphabet="ABC.:-/", min_size=1, max_size=4)
MIXED_VALUES = st.text(alphabet="xyz0123456789é", max_size=6)

leaves = st.one_of(
    LITERALS.map(Lit),
    st.just(EventKey()),
    st.builds(Cap, st.booleans()),
    st.builds(
        Mixed,
        st.lists(MIXED_LITERALS, min_size=1, max_size=3).map(tuple),
        st.booleans(),
        st.booleans(),
    ).filter(lambda m: m.leading or m.trailing or len(m.literals) > 1),
)


def dicts(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Dict]:
    return st.builds(
        lambda keys, values, stars: Dict(
            tuple(zip(keys[: len(values)], values, strict=False)),
            tuple(zip(keys[len(values) :], stars, strict=False)),
        ),
        st.lists(KEYS, min_size=6, max_size=6, unique=True),
        st.lists(children, max_size=4),
        st.lists(st.one_of(LITERALS.map(Lit), st.just(Cap())), max_size=2),
    )


shapes = st.recursive(
    leaves, lambda children: st.one_of(dicts(children), children.map(List)), max_leaves=12
)
root_shapes = dicts(shapes)


def to_pattern(shape: Any, names: list[str]) -> Any:
    """The frozen-able pattern tree of ``shape``; capture names are taken from ``names``."""
    if isinstance(shape, Lit):
        return shape.text
    if isinstance(shape, EventKey):
        return "$event_key$"
    if isinstance(shape, Cap):
        return f"${names.pop(0)}{'?' if shape.optional else ''}$"
    if isinstance(shape, Mixed):
        parts = [f"${names.pop(0)}$"] if shape.leading else []
        for i, literal in enumerate(shape.literals):
            if i:
                parts.append(f"${names.pop(0)}$")
            parts.append(literal)
        if shape.trailing:
            parts.append(f"${names.pop(0)}$")
        return "".join(parts)
    if isinstance(shape, Dict):
        tree = {key: to_pattern(sub, names) for key, sub in shape.entries}
        tree.update({f"{prefix}*": to_pattern(sub, names) for prefix, sub in shape.stars})
        return tree
    assert isinstance(shape, List)
    return [to_pattern(shape.item, names)]


def fresh_names() -> list[str]:
    return WELL_KNOWN + [f"v{i}" for i in range(200)]


# --- rendering a payload from a pattern with random values ----------

ABSENT = object()
SCALARS = st.one_of(
    st.text(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # decimal text, "2" for 2.0, no exponent (docs/format.md, "Webhook models")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{Decimal(repr(value)):f}"
    return str(value)


def add(expected: dict[str, Any], name: str, value: Any) -> None:
    """Record a capture at the top level (first wins, as in the matcher)."""
    expected.setdefault(name, value)


class Renderer:
    """Renders a pattern tree (with names) into a payload and the captures it must give back."""

    def __init__(self, data: st.DataObject, event_key: str, json_values: bool = True) -> None:
        self.data = data
        self.event_key = event_key
        self.json_values = json_values  # False for form bodies: every value is text

    def scalar(self) -> Any:
        return self.data.draw(SCALARS if self.json_values else st.text())

    def render(self, pattern: Any, expected: dict[str, Any], in_dict: bool) -> Any:
        draw = self.data.draw
        if isinstance(pattern, dict):
            return self.render_dict(pattern, expected)
        if isinstance(pattern, list):
            return self.render_list(pattern[0], expected)
        template = str(pattern)
        sole = re.fullmatch(r"\$([^$]+?)(\?)?\$", template)
        if template == "$event_key$":
            return self.event_key
        if sole:
            name, optional = sole.group(1), bool(sole.group(2))
            if optional and in_dict and draw(st.booleans()):
                return ABSENT
            kind = draw(st.sampled_from(["scalar", "null", "list"]))
            if kind == "null":
                return None
            if kind == "list":
                values = draw(st.lists(st.one_of(st.none(), SCALARS), max_size=4))
                add(expected, name, tuple(text_of(v) for v in values if v is not None))
                return values
            value = self.scalar()
            add(expected, name, text_of(value))
            return value
        if "$" in template.replace("$$", ""):
            return self.render_mixed(template, expected)
        return self.render_literal(template)

    def render_literal(self, text: str) -> Any:
        if (
            self.json_values
            and re.fullmatch(r"0|[1-9][0-9]*", text)
            and self.data.draw(st.booleans())
        ):
            return int(text)
        if self.json_values and text in ("true", "false") and self.data.draw(st.booleans()):
            return text == "true"
        return text

    def render_mixed(self, template: str, expected: dict[str, Any]) -> str:
        out = []
        for literal, name in re.findall(r"([^$]*)(?:\$([^$]+)\$)?", template):
            out.append(literal)
            if name:
                value = self.data.draw(MIXED_VALUES)
                add(expected, name, value)
                out.append(value)
        return "".join(out)

    def render_dict(self, pattern: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
        draw = self.data.draw
        payload: dict[str, Any] = {}
        for key, sub in pattern.items():
            if key.endswith("*"):
                payload.update(self.render_star(key[:-1], sub, expected))
                continue
            value = self.render(sub, expected, in_dict=True)
            if value is not ABSENT:
                payload[key] = value
        if draw(st.booleans()):
            payload["zzzz"] = draw(st.one_of(SCALARS, st.just({"extra": [1, 2]})))
        keys = draw(st.permutations(list(payload)))
        return {key: payload[key] for key in keys}

    def render_star(self, prefix: str, sub: Any, expected: dict[str, Any]) -> dict[str, Any]:
        draw = self.data.draw
        suffixes = draw(
            st.lists(st.sampled_from(["", "0", "1", "2", "3", "10", "11"]), min_size=1, unique=True)
        )
        in_order = sorted(suffixes, key=lambda s: -1 if s == "" else int(s))
        values: dict[str, Any] = {}
        collected: dict[str, Any] = {}
        for suffix in in_order:
            element: dict[str, Any] = {}
            values[prefix + suffix] = self.render(sub, element, in_dict=False)
            self.collect(collected, element)
        for name, items in collected.items():
            add(expected, name, tuple(items))
        return values

    def render_list(self, item: Any, expected: dict[str, Any]) -> list[Any]:
        draw = self.data.draw
        elements: list[Any] = []
        collected: dict[str, Any] = {}
        for _ in range(draw(st.integers(1, 3))):
            if isinstance(item, dict) and draw(st.booleans()):
                elements.append("decoy: not an object")
            element: dict[str, Any] = {}
            elements.append(self.render(item, element, in_dict=False))
            self.collect(collected, element)
        for name, items in collected.items():
            add(expected, name, tuple(items))
        return elements

    @staticmethod
    def collect(collected: dict[str, Any], element: dict[str, Any]) -> None:
        for name, value in element.items():
            bucket = collected.setdefault(name, [])
            bucket.extend(value if isinstance(value, tuple) else [value])


def first(value: Any) -> Any:
    if isinstance(value, tuple):
        return value[0] if value else None
    return value


def check_event(event: Any, expected: dict[str, Any], pointer: str) -> None:
    assert event.model == 0
    assert event.payload_pointer == pointer
    assert dict(event.captures) == expected
    assert event.from_number == first(expected.get("from"))
    assert event.to_number == first(expected.get("to"))
    text = first(expected.get("content"))
    assert event.text == (text if text is not None else first(expected.get("text")))
    urls = expected.get("url", ())
    assert event.media_urls == ((urls,) if isinstance(urls, str) else urls)
    assert event.provider_message_id == first(expected.get("messageid"))
    assert event.status == first(expected.get("status"))
    assert event.error == first(expected.get("error"))


EVENT_KEYS = st.sampled_from(["message", "delivered", "inbound.sms", "2"])


@SETTINGS
@given(shape=root_shapes, event_key=EVENT_KEYS, data=st.data())
def test_a_payload_rendered_from_any_model_matches_back_with_exactly_its_values(
    shape: Dict, event_key: str, data: st.DataObject
) -> None:
    pattern = to_pattern(shape, fresh_names())
    defn = definition(model(event_key, pattern))
    batch = data.draw(st.booleans())
    renderer = Renderer(data, event_key)
    payloads, expectations = [], []
    for _ in range(data.draw(st.integers(1, 3)) if batch else 1):
        expected: dict[str, Any] = {}
        payloads.append(renderer.render(pattern, expected, in_dict=False))
        expectations.append(expected)
    body = json.dumps(payloads if batch else payloads[0], ensure_ascii=data.draw(st.booleans()))
    content_type = data.draw(st.sampled_from(["application/json", None, "text/plain"]))
    result = match_webhook(
        defn, WebhookRequest(method="POST", content_type=content_type, body=body.encode())
    )
    assert result.unmatched == ()
    assert len(result.events) == len(payloads)
    for i, (event, expected) in enumerate(zip(result.events, expectations, strict=True)):
        check_event(event, expected, f"/{i}" if batch else "")


# --- flat models through form and multipart bodies ----------

flat_leaves = st.one_of(LITERALS.map(Lit), st.just(EventKey()), st.builds(Cap, st.booleans()))
flat_shapes = st.builds(
    lambda keys, values, stars: Dict(
        tuple(zip(keys[: len(values)], values, strict=False)),
        tuple(zip(keys[len(values) :], stars, strict=False)),
    ),
    st.lists(KEYS, min_size=6, max_size=6, unique=True),
    st.lists(flat_leaves, min_size=1, max_size=4),
    st.lists(st.just(Cap()), max_size=2),
)
FORM_TEXT = st.text(st.characters(blacklist_categories=["Cs"]))


def flat_fields(
    pattern: dict[str, Any], event_key: str, data: st.DataObject
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Form fields rendered from a flat pattern, and the captures they must give back."""
    draw = data.draw
    fields: list[tuple[str, str]] = []
    expected: dict[str, Any] = {}
    for key, sub in pattern.items():
        if key.endswith("*"):
            suffixes = draw(
                st.lists(st.sampled_from(["", "0", "2", "10"]), min_size=1, unique=True)
            )
            in_order = sorted(suffixes, key=lambda s: -1 if s == "" else int(s))
            values = {s: draw(FORM_TEXT) for s in suffixes}
            fields.extend((key[:-1] + s, values[s]) for s in suffixes)
            expected[sub.strip("$")] = tuple(values[s] for s in in_order)
            continue
        sole = re.fullmatch(r"\$([^$]+?)(\?)?\$", sub)
        if sub == "$event_key$":
            fields.append((key, event_key))
        elif sole:
            name, optional = sole.group(1), bool(sole.group(2))
            if optional and draw(st.booleans()):
                continue
            values_list = draw(st.lists(FORM_TEXT, min_size=1, max_size=3))
            fields.extend((key, v) for v in values_list)
            expected[name] = values_list[0] if len(values_list) == 1 else tuple(values_list)
        else:
            fields.append((key, sub))
    # interleave the fields at random, keeping each repeated key's values in their order
    keys = draw(st.permutations([key for key, _ in fields]))
    queues: dict[str, list[str]] = {}
    for key, value in fields:
        queues.setdefault(key, []).append(value)
    return [(key, queues[key].pop(0)) for key in keys], expected


def multipart_body(fields: list[tuple[str, str]], boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n'
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
        + v.encode()
        + b"\r\n"
        for k, v in fields
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


@SETTINGS
@given(shape=flat_shapes, event_key=EVENT_KEYS, data=st.data())
def test_a_form_or_multipart_body_rendered_from_a_flat_model_matches_back(
    shape: Dict, event_key: str, data: st.DataObject
) -> None:
    pattern = to_pattern(shape, fresh_names())
    fields, expected = flat_fields(pattern, event_key, data)
    if data.draw(st.booleans()):
        request = WebhookRequest(
            method="POST",
            content_type="application/x-www-form-urlencoded",
            body=urlencode(fields).encode(),
        )
    else:
        boundary = "b0undary-7MA4YWxkTrZu0gW"
        request = WebhookRequest(
            method="POST",
            content_type=f"multipart/form-data; boundary={boundary}",
            body=multipart_body(fields, boundary),
        )
    result = match_webhook(definition(model(event_key, pattern)), request)
    assert result.unmatched == ()
    (event,) = result.events
    check_event(event, expected, "")


# --- mixed strings behave as an anchored non-greedy regex ----------


@SETTINGS
@given(
    segments=st.lists(
        st.one_of(st.text(alphabet="ab.", min_size=1, max_size=3), st.just(None)),
        min_size=1,
        max_size=5,
    ),
    text=st.text(alphabet="ab.", max_size=12),
)
def test_a_mixed_string_matches_like_an_anchored_non_greedy_regex(
    segments: list[str | None], text: str
) -> None:
    if None not in segments:
        segments.append(None)
    names = [f"p{i}" for i in range(len(segments))]
    template = "".join(f"${names[i]}$" if s is None else s for i, s in enumerate(segments))
    regex = "".join("(.*?)" if s is None else re.escape(s) for s in segments)
    expected = re.fullmatch(regex, text, re.DOTALL)
    captures: dict[str, Any] = {}
    matched = compile_pattern(template, "k").match(text, captures)
    assert matched == (expected is not None)
    if expected is not None:
        placeholders = [names[i] for i, s in enumerate(segments) if s is None]
        wanted: dict[str, str] = {}
        for name, value in zip(placeholders, expected.groups(), strict=True):
            wanted.setdefault(name, value)
        assert captures == wanted


# --- robustness ----------

json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)

ROBUST = definition(
    model(
        "message", {"method": "$event_key$", "params": {"from": "$from$", "content": "$content$"}}
    ),
    model("d", {"t": "dlr.$status$", "ids": ["$messageid$"], "M*": "$url$"}, event_type="mms"),
    model("b", {"id": "$messageid$", "x": {"y": "$error?$"}}, event_type="messageSent", each="/r"),
    model("q", {"a": "$from$"}, method="GET"),
)

CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-16",
            "application/json; charset=rot13",
            "application/json; charset=\x00",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=hex",
            "multipart/form-data; boundary=x",
            'multipart/form-data; boundary=""',
            "multipart/form-data",
            "text/plain",
            "",
            ";;;",
        ]
    ),
    st.text(max_size=40),
    st.builds(
        lambda base, charset: f"{base}; charset={charset}",
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "text/plain",
            ]
        ),
        st.one_of(
            st.sampled_from(sorted(set(encodings.aliases.aliases.values()))), st.text(max_size=12)
        ),
    ),
)


def survives(request: WebhookRequest, defn: Definition = ROBUST) -> None:
    try:
        result = match_webhook(defn, request)
    except EngineError:
        return
    for unmatched in result.unmatched:
        assert unmatched.reason
        assert len(unmatched.near_misses) <= 3


@SETTINGS
@given(
    payload=json_values,
    content_type=CONTENT_TYPES,
    method=st.sampled_from(["POST", "GET", "put"]),
)
def test_random_json_never_raises_anything_but_engine_error(
    payload: Any, content_type: str | None, method: str
) -> None:
    body = json.dumps(payload).encode()
    survives(WebhookRequest(method=method, content_type=content_type, body=body))


@SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"a=%E9&" + b),
        st.binary(max_size=200).map(lambda b: b"--x\r\nContent-Disposition: form-data; " + b),
        st.binary(max_size=200).map(lambda b: b"{" + b),
    ),
    content_type=CONTENT_TYPES,
    query=st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=4).map(tuple),
    method=st.sampled_from(["POST", "GET", "DELETE"]),
)
def test_random_bytes_never_raise_anything_but_engine_error(
    body: bytes, content_type: str | None, query: tuple[tuple[str, str], ...], method: str
) -> None:
    survives(WebhookRequest(method=method, content_type=content_type, body=body, query=query))


def test_deep_and_huge_bodies_are_handled() -> None:
    survives(WebhookRequest(method="POST", content_type=None, body=b"[" * 50_000))
    # deep, but within what the JSON parser accepts: the matcher never recurses into a payload
    level = b'{"method": "message", "params": {"content": "x", "from": '
    deep = level * 300 + b'"1"' + b"}}" * 300
    result = match_webhook(ROBUST, WebhookRequest(method="POST", content_type=None, body=deep))
    assert result.events == ()
    assert "/params/from: $from$ captures a value" in result.unmatched[0].reason
    big = [
        {"method": "message", "params": {"from": str(i), "content": "x" * 100}}
        for i in range(20_000)
    ]
    result = match_webhook(
        ROBUST, WebhookRequest(method="POST", content_type=None, body=json.dumps(big).encode())
    )
    assert len(result.events) == 20_000
    assert result.events[-1].payload_pointer == "/19999"


# --- any form, query or header set, against models with headers and long mixed strings ----------

BOUNDED = settings(
    max_examples=150,
    deadline=timedelta(milliseconds=500),  # generous on a busy 2-core machine; matching is µs
    suppress_health_check=[HealthCheck.too_slow],
)
WITH_HEADERS = definition(
    model(
        "message",
        {"from": "$from$", "to": "$to$", "content": "$content$"},
        headers={"X-Kind": "sms.$status$", "X-Id": "$messageid$"},
    ),
    model(
        "d",
        {"id": "$messageid$", "s": "$status$-$error$-$messageid$!"},
        event_type="messageDelivered",
        headers={"X-Sig": "$sig?$", "x-kind": "$event_key$"},
    ),
    model("q", {"a": "$from$", "b": "$to$", "c": "$content$-$text$-"}, method="GET"),
    model("e", {"id": "$messageid$"}, event_type="messageSent", each="/r"),
)
FIELD_NAMES = st.one_of(
    st.sampled_from(["from", "to", "content", "id", "s", "a", "b", "c", "r", ""]),
    st.text(max_size=6),
)
FIELD_VALUES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="-!.sm", max_size=60),  # close to the mixed strings' literals
)
form_fields = st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=8)
header_sets = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(["X-Kind", "x-id", "X-SIG", "Content-Type"]), st.text(max_size=10)
        ),
        FIELD_VALUES,
    ),
    max_size=8,
).map(tuple)


@BOUNDED
@given(
    fields=form_fields,
    headers=header_sets,
    where=st.sampled_from(["query", "form", "multipart"]),
    method=st.sampled_from(["POST", "GET", "patch"]),
)
def test_any_form_query_or_header_set_gives_a_result_or_an_engine_error(
    fields: list[tuple[str, str]],
    headers: tuple[tuple[str, str], ...],
    where: str,
    method: str,
) -> None:
    if where == "query":
        request = WebhookRequest(
            method=method, content_type=None, body=b"", query=tuple(fields), headers=headers
        )
    elif where == "form":
        body = urlencode(fields).encode()
        form = "application/x-www-form-urlencoded"
        request = WebhookRequest(method=method, content_type=form, body=body, headers=headers)
    else:
        body = multipart_body(fields, "b0undary")
        multipart = "multipart/form-data; boundary=b0undary"
        request = WebhookRequest(method=method, content_type=multipart, body=body, headers=headers)
    survives(request, WITH_HEADERS)


@BOUNDED
@given(payload=json_values, headers=header_sets, batch=st.booleans())
def test_any_json_with_any_header_set_gives_a_result_or_an_engine_error(
    payload: Any, headers: tuple[tuple[str, str], ...], batch: bool
) -> None:
    body = json.dumps([payload, {"r": [payload]}] if batch else payload).encode()
    survives(WebhookRequest(method="POST", content_type=None, body=body, headers=headers))
    survives(
        WebhookRequest(method="POST", content_type=None, body=body, headers=headers), WITH_HEADERS
    )
