"""Properties of render_request that must hold for every value (docs/format.md, "Requests"),
checked with hypothesis.

- Any NUL-free Unicode text rendered into a JSON, form, multipart body or a query string, and read
  back with a real parser, is the text unchanged, and the body has exactly the template's fields.
- No value changes a rendered URL's host, its number of path segments or its query keys; a value
  for the host is either refused or is the host.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import yarl
from _guard import run_guarded
from _request_templates import definition, multipart_fields, request
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from server.engine import RenderError, render_request
from server.engine._placeholders import placeholders_in

texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),
    st.text(st.sampled_from(list('"\\$\r\n\t😀é中 &=+%#?/.;:[]{}-ab'))),
    st.sampled_from(
        ["", "$to$", "costs $5 $to$", "$$", "\r\n--", "--\r\n\r\n", "\u2028", "\ufeff"]
    ),
)
FIELDS = {"content": "$content$", "wrapped": "<$content$|$text$>", "fixed": "x"}
SETTINGS = settings(max_examples=150, deadline=None)


def expected_fields(content: str, text: str) -> list[tuple[str, str]]:
    return [("content", content), ("wrapped", f"<{content}|{text}>"), ("fixed", "x")]


@SETTINGS
@given(content=texts, text=texts)
def test_any_text_survives_a_json_body(content: str, text: str) -> None:
    template = request(FIELDS)
    rendered = render_request(definition(template), template, {"content": content, "text": text})
    assert rendered.body is not None
    assert json.loads(rendered.body.decode("utf-8")) == dict(expected_fields(content, text))


@SETTINGS
@given(content=texts, text=texts)
def test_any_text_survives_a_form_body(content: str, text: str) -> None:
    template = request(FIELDS, content_type="application/x-www-form-urlencoded")
    rendered = render_request(definition(template), template, {"content": content, "text": text})
    assert rendered.body is not None
    fields = parse_qsl(rendered.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    assert fields == expected_fields(content, text)


@SETTINGS
@given(content=texts, text=texts, boundary=st.none() | st.just("fixed-boundary"))
def test_any_text_survives_a_multipart_body(content: str, text: str, boundary: str | None) -> None:
    assume(boundary is None or not any(boundary in v for v in (content, text)))
    template = request(FIELDS, content_type="multipart/form-data")
    variables = {"content": content, "text": text}
    rendered = render_request(definition(template), template, variables, boundary=boundary)
    assert rendered.body is not None
    content_type = dict(rendered.headers)["Content-Type"]
    assert multipart_fields(rendered.body, content_type) == expected_fields(content, text)


@SETTINGS
@given(content=texts, text=texts)
def test_any_text_survives_a_query_string(content: str, text: str) -> None:
    template = request(FIELDS, method="GET", url="https://api.example.com/send?api=2")
    rendered = render_request(definition(template), template, {"content": content, "text": text})
    query = urlsplit(rendered.url).query
    fields = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    assert fields == [("api", "2"), *expected_fields(content, text)]


URL = "https://api.example.com/v1/$a$/x/$b$.json?k=$c$&m=lit$d$#f$e$"


def _dot_segment(value: str) -> bool:
    return value in (".", "..")


@SETTINGS
@given(a=texts, b=texts, c=texts, d=texts, e=texts, to=texts)
def test_no_value_changes_the_urls_structure(
    a: str, b: str, c: str, d: str, e: str, to: str
) -> None:
    template = request({"to": "$to$"}, url=URL, method="GET")
    variables = {"a": a, "b": b, "c": c, "d": d, "e": e, "to": to}
    try:
        url = render_request(definition(template), template, variables).url
    except RenderError:
        assert _dot_segment(a)  # the only refusal: a value that would be a "." or ".." segment
        return
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "api.example.com"
    segments = parts.path.split("/")
    assert len(segments) == 5
    assert [unquote(s) for s in segments] == ["", "v1", a, "x", f"{b}.json"]
    query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    assert query == [("k", c), ("m", f"lit{d}"), ("to", to)]
    assert unquote(parts.fragment) == f"f{e}"
    # The HTTP clients read the same structure.
    assert httpx.URL(url).host == "api.example.com"
    assert len(httpx.URL(url).raw_path.split(b"?")[0].split(b"/")) == 5
    assert yarl.URL(url, encoded=True).host == "api.example.com"
    assert len(yarl.URL(url, encoded=True).raw_path.split("/")) == 5


hosts = st.one_of(
    texts,
    st.text(st.sampled_from(list("ab1.-_:[]@/?#\\% xn")), max_size=20),
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9-]{1,10}){0,3}(:[0-9]{1,6})?", fullmatch=True),
    st.sampled_from(["[::1]:8080", "127.0.0.1", "bücher.example", "a.example:443@evil", "1.2.3"]),
)


@SETTINGS
@given(server=hosts)
def test_a_host_value_is_refused_or_is_the_host(server: str) -> None:
    template = request(None, url="https://$Server$/ns-api?x=1", pointer="/Subscribe")
    try:
        url = render_request(definition(template), template, {"Server": server}).url
    except RenderError as error:
        assert error.pointer == "/Subscribe/request_url"
        return
    parts = urlsplit(url)
    assert url == f"https://{parts.netloc}/ns-api?x=1"
    assert "@" not in parts.netloc
    expected = server if server.isascii() else server.encode("idna").decode("ascii")
    assert parts.netloc == expected
    # Both HTTP clients agree with the standard library on the host.
    assert parts.hostname is not None
    assert httpx.URL(url).raw_host.decode("ascii").lower() == parts.hostname
    assert (yarl.URL(url, encoded=True).raw_host or "").lower() == parts.hostname


# --- any template, any values: a request or a RenderError, at a cost bounded by the output ---

BOUNDED = settings(
    max_examples=150,
    deadline=timedelta(milliseconds=500),  # generous on a busy 2-core machine; rendering is µs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = ["content", "text", "to", "from", "API key"]
pieces = st.one_of(
    st.sampled_from([f"${name}$" for name in NAMES] + ["$$", "$", "$to", '=&%\r\n"\\']),
    st.text(max_size=6),
)
template_strings = st.lists(pieces, max_size=5).map("".join)
template_trees = st.recursive(
    st.one_of(
        template_strings, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(template_strings, children, max_size=4),
    ),
    max_leaves=16,
)
any_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.text(st.sampled_from(list('\x00\r\n\ud800&=%/?#"\\$é😀 ')), max_size=40),
    st.lists(st.text(max_size=10), max_size=4).map(tuple),
)
SHAPES = [
    ("POST", "application/json"),
    ("POST", "application/vnd.api+json"),
    ("POST", "application/x-www-form-urlencoded"),
    ("POST", "multipart/form-data"),
    ("GET", "application/json"),
    ("DELETE", "application/json"),
]


def _size_of(value: object) -> int:
    """The characters a template tree or a value can put into a request."""
    if isinstance(value, dict):
        return sum(len(key) + _size_of(item) + 8 for key, item in value.items())
    if isinstance(value, list | tuple):
        return sum(_size_of(item) + 8 for item in value)
    return len(str(value)) + 8


@BOUNDED
@given(
    parameters=template_trees,
    header=template_strings,
    path=template_strings,
    shape=st.sampled_from(SHAPES),
    values=st.fixed_dictionaries({}, optional={name: any_values for name in NAMES}),
)
def test_any_template_with_any_values_renders_or_raises_render_error(
    parameters: Any, header: str, path: str, shape: tuple[str, str], values: dict[str, Any]
) -> None:
    method, content_type = shape
    url = "https://api.example.com/v1/" + path.replace("/", "") + "?k=" + path
    template = request(
        parameters,
        url=url,
        method=method,
        content_type=content_type,
        headers={"X-Extra": header},
    )
    try:
        rendered = render_request(definition(template), template, values)
    except RenderError as error:
        assert error.pointer is None or error.pointer.startswith("/API/SendMessage")
        return
    # Every byte of the request comes from the template or a value put in where a placeholder
    # is: the cost is bounded by what the template may copy, whatever the values hold.
    placeholders = sum(len(placeholders_in(text)) for text in (url, header, json.dumps(parameters)))
    largest = max((_size_of(v) for v in values.values()), default=0)
    bound = 12 * (_size_of(parameters) + len(url) + len(header) + placeholders * largest) + 500
    size = len(rendered.url) + len(rendered.body or b"")
    size += sum(len(name) + len(value) for name, value in rendered.headers)
    assert size <= bound


def test_a_huge_value_in_every_kind_of_body_renders_in_linear_time() -> None:
    # The renderer copies each value once per placeholder; the loader bounds placeholders
    # (docs/format.md, "Limits"). A megabyte of every character class that is escaped somewhere.
    out = run_guarded(
        """
        from _request_templates import definition, request
        from server.engine import render_request
        value = "\\"\\\\\\r\\n&=%+/?#$é😀\\u2028 a" * 70_000
        for method, kind in (
            ("POST", "application/json"),
            ("POST", "application/x-www-form-urlencoded"),
            ("POST", "multipart/form-data"),
            ("GET", "application/json"),
        ):
            template = request(
                {"c": "$content$", "w": "<$content$|$text$>", "l": ["$content$"]},
                method=method,
                content_type=kind,
                url="https://api.example.com/$to$/x?q=$text$",
            )
            values = {"content": value, "text": value, "to": value}
            rendered = render_request(definition(template), template, values)
            size = len(rendered.url) + len(rendered.body or b"")
            print(4 * len(value) < size < 60 * len(value))
        """,
    )
    assert out.split() == ["True"] * 4
