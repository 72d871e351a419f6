"""URL templates whose values can never change the URL's structure (docs/format.md, "Requests").

The template is split once, on its literal text only, into origin (scheme and authority), path,
query and fragment; a placeholder belongs to the part it stands in. Then, when rendering:

- in the origin a value must be a host name or IP address with an optional port (the seed's
  ``https://$Server$/ns-api/...``). A value that opens the template may also carry the scheme
  (``$Base URL$/messages`` with ``https://api.example.com``). The assembled origin must be an
  ``http`` or ``https`` origin with a valid host, whatever the values were;
- in the path a value is percent-encoded as one segment: ``/``, ``?``, ``#`` and ``%`` are encoded,
  and a value that would make a ``.`` or ``..`` segment is refused (normalising URL parsers would
  resolve it, even percent-encoded);
- in the query and the fragment a value is percent-encoded, so it cannot add a key;
- (ext) ``$name|base_url$`` opening the template is a whole base URL, ``http(s)://host[:port]``
  with an optional path and query (``https://sms.example:8443/gw/api?account=7``): its origin is
  checked as above, its path may make no ``.`` or ``..`` segment, it has no userinfo and no
  fragment; the template's path is appended to its path and the template's query parameters to
  its query (with ``&``, never a second ``?``).

Literal text is the author's: it is kept, with only non-ASCII characters, spaces and controls
percent-encoded. Errors never quote a value (it may be a secret).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import quote

from ._errors import RenderError
from ._placeholders import Placeholder, Segment, parse_template
from ._template import BASE_URL_FILTER, Lookup, placeholder_text

__all__ = ["UrlTemplate", "ascii_host", "compile_url"]

_LITERAL_SAFE = "!#$%&'()*+,/:;=?@[]~"
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?:(?P<userinfo>[^@/?#\[\]]*)@)?"
    r"(?P<host>\[[^\]/?#@]*\]|[^:/?#\[\]@]*)"
    r"(?::(?P<port>[^/?#@]*))?"
)
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Characters a host-part value may not hold: they would end the authority or add userinfo.
_NOT_HOST = re.compile(r"[/?#@\\\s\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?")
_DOT_SEGMENTS = frozenset({".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"})


def _is_dot_segment(segment: str) -> bool:
    return segment.lower() in _DOT_SEGMENTS


def _encode_literal(text: str, where: str) -> str:
    try:
        return quote(text, safe=_LITERAL_SAFE)
    except UnicodeError:
        raise RenderError("the request URL is not valid Unicode text", pointer=where) from None


@dataclass(slots=True)
class _Parts:
    origin: list[Segment] = field(default_factory=list)
    path: list[Segment] = field(default_factory=list)
    query: list[Segment] | None = None
    fragment: list[Segment] | None = None
    literal_separator: bool = False  # the "://" is the template's own text

    def current(self, state: str) -> list[Segment]:
        if state == "origin":
            return self.origin
        if state == "path":
            return self.path
        if state == "query":
            assert self.query is not None
            return self.query
        assert self.fragment is not None
        return self.fragment


def _split(template: str) -> _Parts:
    """Split the template's segments into origin, path, query and fragment on literal text."""
    parts = _Parts()
    state = "origin"
    for segment in parse_template(template):
        if isinstance(segment, Placeholder):
            parts.current(state).append(segment)
            continue
        text = segment
        while text:
            if state == "origin":
                start = 0
                if not parts.literal_separator:
                    sep = text.find("://")
                    first = _find_any(text, "/?#", 0)
                    if sep != -1 and (first == -1 or sep < first):
                        parts.literal_separator = True
                        start = sep + 3
                end = _find_any(text, "/?#", start)
            elif state == "path":
                end = _find_any(text, "?#", 0)
            elif state == "query":
                end = _find_any(text, "#", 0)
            else:
                end = -1
            if end == -1:
                parts.current(state).append(text)
                break
            if end:
                parts.current(state).append(text[:end])
            mark, text = text[end], text[end:]
            if mark == "/":
                state = "path"
            elif mark == "?":
                state, text, parts.query = "query", text[1:], []
            else:
                state, text, parts.fragment = "fragment", text[1:], []
    return parts


def _find_any(text: str, chars: str, start: int) -> int:
    found = [i for i in (text.find(c, start) for c in chars) if i != -1]
    return min(found) if found else -1


def ascii_host(host: str) -> str | None:
    """The host in ASCII form, or None when it is not a host name or an IP address (an IPv6
    address in brackets)."""
    return _check_host(host)


def _check_host(host: str) -> str | None:
    """The host in ASCII form, or None when it is not a host name or an IP address."""
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        return host
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit() or labels[-1].lower().startswith("0x"):
        # A name ending in a number is an IPv4 address to URL parsers; it must be a valid one.
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return None
    return ascii_host


def _check_origin(origin: str, where: str) -> str:
    """The origin in canonical form (ASCII host) or RenderError."""
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        raise RenderError(
            "the request URL must start with http:// or https:// and a host name", pointer=where
        )
    scheme = match["scheme"]
    if scheme.lower() not in ("http", "https"):
        raise RenderError("only http and https URLs can be requested", pointer=where)
    host = _check_host(match["host"])
    if host is None:
        raise RenderError("the request URL's host is not a host name or IP address", pointer=where)
    port = match["port"]
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        raise RenderError("the request URL's port is not a number from 1 to 65535", pointer=where)
    userinfo = f"{match['userinfo']}@" if match["userinfo"] is not None else ""
    return f"{scheme}://{userinfo}{host}{'' if port is None else ':' + port}"


def _encode_value(text: str, where: str) -> str:
    try:
        return quote(text, safe="")
    except UnicodeError:
        raise RenderError("a URL value is not valid Unicode text", pointer=where) from None


@dataclass(frozen=True, slots=True)
class UrlTemplate:
    """A compiled ``request_url``; :meth:`render` builds the URL from variable values."""

    pointer: str
    origin: tuple[Segment, ...]
    origin_scheme_from_value: bool
    path: tuple[Segment, ...]
    query: tuple[Segment, ...] | None
    fragment: tuple[Segment, ...] | None
    literal_dot_segments: frozenset[int]
    static_origin: str | None
    names: frozenset[str]
    base_url: bool = False  # (ext) the opening placeholder is a whole base URL ($x|base_url$)

    def render(
        self,
        values: Lookup,
        *,
        verbatim: Collection[str] = (),
        extra_query: str = "",
        paths: Collection[str] = (),
    ) -> str:
        """The URL. ``verbatim`` names values written as they are, unchecked (display masks);
        ``extra_query`` is an encoded query string appended to the template's own query;
        (ext) ``paths`` names values that in the path are a relative path of several segments,
        each encoded, and may end with a query, which opens the URL's (a media ``download``'s
        captures: docs/format.md, "Media given as an id")."""
        base_query: str | None = None
        if self.base_url:
            origin, base_path, base_query = self._base(values, verbatim)
            out = [origin, base_path]
        else:
            out = [
                self.static_origin
                if self.static_origin is not None
                else self._origin(values, verbatim)
            ]
        start = len(out)
        risky_dots = False
        for segment in self.path:
            if isinstance(segment, str):
                out.append(segment)
                continue
            if segment.name in paths:
                path, query = self._path_value(segment, values)
                out.append(path)
                if query is not None:
                    base_query = query if base_query is None else f"{base_query}&{query}"
                continue
            text = self._value(segment, values, verbatim, out)
            risky_dots = risky_dots or (text != "" and text.strip(".") == "")
        if risky_dots:
            self._check_dots("".join(out[start:]))  # the template's path (the base's is checked)
        if self.base_url and out[1].endswith("/") and "".join(out[start:]).startswith("/"):
            out[start] = out[start][1:]  # "https://h/gw/" + "/send": one "/"
        if self.query is not None or extra_query or base_query is not None:
            out.append("?")
            start = len(out)
            if base_query:
                out.append(base_query)
            own: list[str] = []
            for segment in self.query or ():
                if isinstance(segment, str):
                    own.append(segment)
                else:
                    self._value(segment, values, verbatim, own)
            if base_query and "".join(own) and _needs_ampersand(out, start):
                out.append("&")  # the template's own query after the base URL's
            out.extend(own)
            if extra_query:
                if _needs_ampersand(out, start):
                    out.append("&")
                out.append(extra_query)
        if self.fragment is not None:
            out.append("#")
            for segment in self.fragment:
                if isinstance(segment, str):
                    out.append(segment)
                else:
                    self._value(segment, values, verbatim, out)
        return "".join(out)

    def origin_of(self, values: Lookup) -> str:
        """The URL's origin alone (``scheme://host[:port]``) rendered with ``values``; raises
        :class:`RenderError` as :meth:`render` does when a value cannot make one."""
        if self.base_url:
            return self._base(values, ())[0]
        return self.static_origin if self.static_origin is not None else self._origin(values, ())

    def _value(
        self, placeholder: Placeholder, values: Lookup, verbatim: Collection[str], out: list[str]
    ) -> str:
        value = values.get(placeholder.name)
        text = placeholder_text(placeholder, values)
        out.append(
            text
            if placeholder.name in verbatim and value is not None
            else _encode_value(text, self.pointer)
        )
        return text

    def _path_value(self, placeholder: Placeholder, values: Lookup) -> tuple[str, str | None]:
        """(ext) A value written as a relative path — each ``/``-separated segment encoded, a
        final ``/`` kept — and its query, if it has a ``?`` (encoded as a base URL's: what it
        encodes already is kept). An empty segment but the last, a ``.`` or ``..`` segment (it
        would climb or fold the template's path) and a fragment are refused."""
        text = placeholder_text(placeholder, values)
        path, mark, query = text.partition("?")
        segments = path.split("/")
        inner = segments[:-1] if len(segments) > 1 and not segments[-1] else segments
        if (
            any(s == "" or _is_dot_segment(s) or s.strip(".") == "" for s in inner)
            or "#" in query
            or _CONTROL.search(query)
        ):
            raise RenderError(
                f"the value of ${placeholder.name}$ is not a relative path (an empty, "
                '"." or ".." segment, or a fragment)',
                pointer=self.pointer,
            )
        encoded = "/".join(_encode_value(s, self.pointer) for s in segments)
        return encoded, _encode_literal(query, self.pointer) if mark else None

    def _base(self, values: Lookup, verbatim: Collection[str]) -> tuple[str, str, str | None]:
        """(ext) The origin, the encoded path and the encoded query (None: no ``?``) of the
        base URL that opens the template."""
        segment = self.origin[0]
        assert isinstance(segment, Placeholder)
        value = values.get(segment.name)
        text = placeholder_text(segment, values)
        if segment.name in verbatim and value is not None:
            return text, "", None  # a display mask
        return split_base_url(text, f"${segment.name}$", self.pointer)

    def _origin(self, values: Lookup, verbatim: Collection[str]) -> str:
        out: list[str] = []
        display_only = False
        for index, segment in enumerate(self.origin):
            if isinstance(segment, str):
                out.append(segment)
                continue
            value = values.get(segment.name)
            text = placeholder_text(segment, values)
            if segment.name in verbatim and value is not None:
                display_only = True
            elif index == 0 and self.origin_scheme_from_value:
                scheme = _SCHEME_PREFIX.match(text)
                rest = text[scheme.end() :] if scheme else text
                if _NOT_HOST.search(rest):
                    raise RenderError(
                        f"the value of ${segment.name}$ is not a URL origin"
                        " (http(s)://host with an optional port)",
                        pointer=self.pointer,
                    )
            elif _NOT_HOST.search(text):
                raise RenderError(
                    f"the value of ${segment.name}$ is not a host name or IP address"
                    " (with an optional port)",
                    pointer=self.pointer,
                )
            out.append(text)
        origin = "".join(out)
        return origin if display_only else _check_origin(origin, self.pointer)

    def _check_dots(self, path: str) -> None:
        for index, segment in enumerate(path.split("/")):
            if _is_dot_segment(segment) and index not in self.literal_dot_segments:
                raise RenderError(
                    'a value in the URL path cannot make a "." or ".." segment',
                    pointer=self.pointer,
                )


def _needs_ampersand(out: list[str], start: int) -> bool:
    """Whether the query written so far (from ``out[start]``) needs ``&`` before more."""
    for piece in reversed(out[start:]):
        if piece:
            return not piece.endswith("&")
    return False


def split_base_url(text: str, name: str, where: str) -> tuple[str, str, str | None]:
    """(ext) A base URL value's checked origin, encoded path and encoded query (None when it has
    no ``?``). Errors name the placeholder, never the value (it may be a secret)."""
    scheme = _SCHEME_PREFIX.match(text)
    if scheme is None:
        raise RenderError(
            f"the value of {name} is not a base URL: it must start with https:// or http://",
            pointer=where,
        )
    rest = text[scheme.end() :]
    end = _find_any(rest, "/?#", 0)
    authority, tail = (rest, "") if end == -1 else (rest[:end], rest[end:])
    if _NOT_HOST.search(authority) or _CONTROL.search(tail):
        raise RenderError(
            f"the value of {name} is not a base URL (http(s)://host, an optional port, path and "
            "query; no user name or password, no white space)",
            pointer=where,
        )
    origin = _check_origin(text[: scheme.end()] + authority, where)
    if "#" in tail:
        raise RenderError(f"the value of {name} is a base URL with a fragment (#)", pointer=where)
    path, mark, query = tail.partition("?")
    if any(_is_dot_segment(piece) for piece in path.split("/")):
        raise RenderError(
            f'the value of {name} is a base URL whose path has a "." or ".." segment',
            pointer=where,
        )
    return (
        origin,
        _encode_literal(path, where),
        _encode_literal(query, where) if mark else None,
    )


def compile_url(template: str, pointer: str) -> UrlTemplate:
    """Compile a ``request_url`` template; ``pointer`` locates it for errors."""
    parts = _split(template)

    def encoded(segments: list[Segment]) -> tuple[Segment, ...]:
        return tuple(_encode_literal(s, pointer) if isinstance(s, str) else s for s in segments)

    path = encoded(parts.path)
    literal_dots: set[int] = set()
    index, literal_only, current = 0, True, ""
    for segment in (*path, "/"):
        if isinstance(segment, Placeholder):
            literal_only = False
            continue
        pieces = segment.split("/")
        for piece in pieces[:-1]:
            current += piece
            if literal_only and _is_dot_segment(current):
                literal_dots.add(index)
            index, literal_only, current = index + 1, True, ""
        current += pieces[-1]
    opening = parts.origin[0] if parts.origin else None
    base_url = (
        isinstance(opening, Placeholder)
        and BASE_URL_FILTER in opening.filters
        and len(parts.origin) == 1
        and not parts.literal_separator
    )
    static = None
    if not any(isinstance(s, Placeholder) for s in parts.origin):
        static = _check_origin("".join(s for s in parts.origin if isinstance(s, str)), pointer)
    names = frozenset(
        s.name
        for group in (parts.origin, parts.path, parts.query or [], parts.fragment or [])
        for s in group
        if isinstance(s, Placeholder)
    )
    return UrlTemplate(
        pointer=pointer,
        origin=tuple(parts.origin),
        origin_scheme_from_value=not parts.literal_separator,
        path=path,
        query=None if parts.query is None else encoded(parts.query),
        fragment=None if parts.fragment is None else encoded(parts.fragment),
        literal_dot_segments=frozenset(literal_dots),
        static_origin=static,
        names=names,
        base_url=base_url,
    )
