"""Rendering a request (SendMessage, SendFile, Subscribe, Unsubscribe) from variables
(docs/format.md, "Requests").

:func:`render_request` turns a :class:`RequestTemplate` plus the variables of one call (request
variables and the installation's property values, keyed by name) into the exact HTTP request:
method, URL (:mod:`._url`), headers and body (:mod:`._body`). Templates are compiled once per
template object and cached, because rendering is on the send path.

Headers come in this order: ``Content-Type`` (only when there is a body), the auth header
(docs/format.md, "Authentication"), then ``request_headers``, which replace an earlier header of
the same name (case-insensitively).

With ``masked=True`` the request is rendered for display: every value of a secret property is
replaced by :data:`MASK` where the template put it (a header, a body field, a URL segment or query
value, inside the Basic credentials), never by searching the text for it. The real values are
rendered first, so a masked rendering fails exactly when a real one would.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote

from ._body import (
    BodyKind,
    body_kind,
    encode_form,
    encode_json,
    encode_multipart,
    encode_query,
    form_fields,
    multipart_content_type,
    parameters_in_query,
)
from ._errors import RenderError
from ._gsm import text_encoding
from ._model import (
    Auth,
    BasicAuth,
    BearerAuth,
    Definition,
    Frozen,
    HeaderAuth,
    JwtAuth,
    RequestTemplate,
    TokenAuth,
)
from ._numbers import NUMBER_VARIABLES, format_number
from ._placeholders import placeholders_in
from ._template import (
    MISSING,
    Lookup,
    Masked,
    TextRenderer,
    TreeRenderer,
    Value,
    captured_names,
    compile_text,
    compile_tree,
    text_names,
    tree_names,
    value_text,
)
from ._url import UrlTemplate, compile_url
from ._xml_template import XmlRenderer, compile_xml

__all__ = [
    "MASK",
    "RenderedRequest",
    "Value",
    "auth_variables",
    "compile_requests",
    "render_credentials",
    "render_request",
    "request_origins",
    "response_variables",
    "template_variables",
]

#: What a secret value is shown as in a masked rendering.
MASK = "••••••"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderedRequest:
    """The exact HTTP request to make. ``url`` is fully percent-encoded: send it as it is."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


K = TypeVar("K")
C = TypeVar("C")


class _IdentityCache(Generic[K, C]):
    """Compiled forms keyed by the identity of the (immutable, often unhashable) source object.

    The source is kept alive with its entry, so an id is never reused while cached.
    """

    def __init__(self, compile: Callable[[K], C], size: int = 512) -> None:
        self._compile = compile
        self._size = size
        self._entries: dict[int, tuple[K, C]] = {}
        self._lock = threading.Lock()

    def get(self, source: K) -> C:
        entry = self._entries.get(id(source))
        if entry is not None and entry[0] is source:
            return entry[1]
        compiled = self._compile(source)
        with self._lock:
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[id(source)] = (source, compiled)
        return compiled


def _header_name(name: str, where: str) -> str:
    if _TOKEN.fullmatch(name) is None:
        raise RenderError(f"{name!r} is not a valid header name", pointer=where)
    return name


def _check_value(value: str, where: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise RenderError(
            "a header value cannot contain a line break or NUL character", pointer=where
        )
    return value


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class _Request:
    """A compiled RequestTemplate."""

    pointer: str
    url: UrlTemplate
    in_query: bool
    kind: BodyKind | None
    content_type: str
    parameters: TreeRenderer | None
    headers: tuple[tuple[str, TextRenderer, str], ...]  # name, value, pointer
    # (ext) the variable whose text $encoding$ describes, when the request uses $encoding$
    encoding_of: str | None
    xml: XmlRenderer | None = None  # an XML body's template (docs/format.md, "XML bodies")
    query: TreeRenderer | None = None  # (ext) request_query (docs/format.md, "Requests")
    # (ext) built values: (name, renderer, the names it reads) (docs/format.md, "Value filters")
    build: tuple[tuple[str, TextRenderer, frozenset[str]], ...] = ()


def _compile_request(template: RequestTemplate) -> _Request:
    pointer = template.pointer
    in_query = parameters_in_query(template.method, template.parameters_in)
    kind = body_kind(template.content_type)
    if template.parameters is not None and not in_query and kind is None:
        raise RenderError(
            f"a request body cannot be written as {template.content_type!r}"
            " (JSON, form, multipart or XML)",
            pointer=f"{pointer}/request_content_type",
        )
    _check_value(template.content_type, f"{pointer}/request_content_type")
    xml = _compile_xml_body(template, kind, in_query)
    headers = []
    for name, value in template.headers.items():
        where = f"{pointer}/request_headers/{_escape_pointer(name)}"
        headers.append((_header_name(name, where), compile_text(value), where))
    return _Request(
        pointer=pointer,
        url=compile_url(template.url, f"{pointer}/request_url"),
        in_query=in_query,
        kind=kind,
        content_type=template.content_type.strip(),
        parameters=(
            None
            if template.parameters is None or xml is not None
            else _top(template.parameters, template.omit_empty)
        ),
        headers=tuple(headers),
        xml=xml,
        encoding_of=_encoding_source(template),
        query=(None if template.query is None else _top(template.query, template.omit_empty)),
        build=tuple(
            (name, compile_text(text), _needed(text)) for name, text in template.build.items()
        ),
    )


def _needed(text: str) -> frozenset[str]:
    """The names a built value needs a value of: every placeholder but one with a default."""
    return frozenset(
        p.name
        for p in placeholders_in(text)
        if not any(f.startswith("default:") for f in p.filters)
    )


def _with_built(compiled: _Request, values: Lookup, hidden: frozenset[str] | None) -> Lookup:
    """(ext) ``values`` and the request's built values (docs/format.md, "Value filters"): each
    template's text; no value when a name it reads has none; the mask when it reads a secret
    that a display masks, so that no filter writes the secret's neighbours around it."""
    built: dict[str, Value] = {}
    for name, render, needed in compiled.build:
        if any(values.get(n) in (None, ()) for n in needed):
            built[name] = None
        elif hidden and not hidden.isdisjoint(needed):
            built[name] = Masked(MASK)
        else:
            built[name] = render(values)
    return {**values, **built}


def _top(tree: Frozen, omit_empty: bool) -> TreeRenderer:
    """The renderer of request_parameters or request_query. Under ``request_omit_empty`` an
    object emptied of its keys is left out, but the top object itself stays (as ``{}``)."""
    render = compile_tree(tree, omit_empty=omit_empty)
    if not omit_empty or not isinstance(tree, Mapping):
        return render

    def top(values: Lookup) -> object:
        rendered = render(values)
        return {} if rendered is MISSING else rendered

    return top


def _compile_xml_body(
    template: RequestTemplate, kind: BodyKind | None, in_query: bool
) -> XmlRenderer | None:
    """An XML body's renderer; None for any other body (docs/format.md, "XML bodies")."""
    if kind != "xml" or in_query or template.parameters is None:
        return None
    where = f"{template.pointer}/request_parameters"
    if not isinstance(template.parameters, str):
        raise RenderError("an XML body's request_parameters must be a string", pointer=where)
    return compile_xml(template.parameters, where)


#: (ext) $encoding$ describes the message's text: SendFile's caption, any other send's content
#: (docs/format.md, "Text encodings").
ENCODING = "encoding"


def _encoding_source(template: RequestTemplate) -> str | None:
    if ENCODING not in template_variables(template):
        return None
    return "text" if template.pointer.startswith("/API/SendFile") else "content"


@dataclass(frozen=True, slots=True)
class _AuthHeaders:
    """A compiled ``auth``: header templates, or how to place the caller's bearer token."""

    basic: tuple[TextRenderer, TextRenderer] | None = None
    basic_names: frozenset[str] = frozenset()
    templates: tuple[tuple[str, TextRenderer, str], ...] = ()  # name, value, pointer
    takes_bearer_token: bool = False
    # (ext) a token from a request (docs/format.md, "Tokens from a request"): the templates
    # above and these query parameters render with the caller's token as $token$
    query: tuple[tuple[str, TextRenderer, str], ...] = ()
    token_variable: bool = False


def _compile_auth(auth: Auth, at: str = "/auth") -> _AuthHeaders:
    """``auth`` compiled; ``at`` is where it stands (``/auth``, (ext) ``/Media/auth``)."""
    if isinstance(auth, BasicAuth):
        return _AuthHeaders(
            basic=(compile_text(auth.username), compile_text(auth.password)),
            basic_names=text_names(auth.username) | text_names(auth.password),
        )
    if isinstance(auth, BearerAuth):
        token = compile_text(auth.token)

        def bearer(values: Lookup) -> str | None:
            value = token(values)
            return None if value is None else f"Bearer {value}"

        return _AuthHeaders(templates=(("Authorization", bearer, f"{at}/token"),))
    if isinstance(auth, HeaderAuth):
        templates = []
        for name, value in auth.headers.items():
            where = f"{at}/headers/{_escape_pointer(name)}"
            templates.append((_header_name(name, where), compile_text(value), where))
        return _AuthHeaders(templates=tuple(templates))
    if isinstance(auth, TokenAuth):
        return _compile_token_use(auth, at)
    assert isinstance(auth, JwtAuth)
    return _AuthHeaders(takes_bearer_token=True)


#: (ext) The variable a token auth's ``use`` puts the token with (docs/format.md, "Tokens from a
#: request").
TOKEN_VARIABLE = "token"  # noqa: S105 (a variable name, not a secret)


def _compile_token_use(auth: TokenAuth, at: str) -> _AuthHeaders:
    headers = []
    for name, value in auth.headers.items():
        where = f"{at}/use/headers/{_escape_pointer(name)}"
        headers.append((_header_name(name, where), compile_text(value), where))
    query = tuple(
        (name, compile_text(value), f"{at}/use/query/{_escape_pointer(name)}")
        for name, value in auth.query.items()
    )
    return _AuthHeaders(templates=tuple(headers), query=query, token_variable=True)


_OAUTH2 = _AuthHeaders(takes_bearer_token=True)
_requests: _IdentityCache[RequestTemplate, _Request] = _IdentityCache(_compile_request)
_auths: _IdentityCache[Auth, _AuthHeaders] = _IdentityCache(_compile_auth)
#: (ext) a ``Media`` auth of its own (docs/format.md, "Media"): its errors point into /Media/auth
_media_auths: _IdentityCache[Auth, _AuthHeaders] = _IdentityCache(
    lambda auth: _compile_auth(auth, "/Media/auth")
)


def compile_requests(definition: Definition) -> None:
    """Compile every request template of ``definition`` and of its variants now, into the cache
    :func:`render_request` reads: a large template (thousands of ``$switch`` cases) then costs
    its compile where the caller loads the definition — off the event loop — not at its first
    send. A template that does not compile is left for its render to report."""
    for each in (definition, *definition.variants.values()):
        auth, lookup = each.auth, each.lookup_contact
        for template in (
            each.send_message,
            each.send_file,
            each.send_typing,
            each.mark_read,
            *each.subscribe,
            *each.unsubscribe,
            lookup.request if lookup is not None else None,
            auth.request if isinstance(auth, TokenAuth) else None,
        ):
            if template is not None:
                with contextlib.suppress(RenderError):
                    _requests.get(template)


def _auth_headers(
    definition: Definition,
    values: Lookup,
    bearer_token: str | None,
    masked: frozenset[str] | None,
) -> list[tuple[str, str]]:
    if definition.auth is not None:
        auth = _auths.get(definition.auth)
    elif definition.oauth2 is not None:
        auth = _OAUTH2
    else:
        return []
    return _credentials(auth, values, bearer_token, masked, "/auth")


def _credentials(
    auth: _AuthHeaders,
    values: Lookup,
    bearer_token: str | None,
    masked: frozenset[str] | None,
    at: str,
) -> list[tuple[str, str]]:
    if auth.takes_bearer_token:
        if bearer_token is None:
            return []
        token = MASK if masked is not None else bearer_token
        return [("Authorization", _check_value(f"Bearer {token}", at))]
    if auth.token_variable:
        if bearer_token is None:
            return []
        values = _with_token(values, bearer_token, masked)
    if auth.basic is not None:
        if masked is not None and auth.basic_names & masked:
            return [("Authorization", f"Basic {MASK}")]
        username = auth.basic[0](values) or ""
        password = auth.basic[1](values) or ""
        try:
            credentials = base64.b64encode(f"{username}:{password}".encode())
        except UnicodeError:
            raise RenderError("the Basic credentials are not valid text", pointer=at) from None
        return [("Authorization", f"Basic {credentials.decode('ascii')}")]
    headers = []
    for name, render, where in auth.templates:
        value = render(values)
        if value is not None:
            headers.append((name, _check_value(value, where)))
    return headers


def _with_token(values: Lookup, token: str, masked: frozenset[str] | None) -> Lookup:
    """(ext) ``values`` with the caller's token as ``$token$`` (masked for display)."""
    return {**values, TOKEN_VARIABLE: Masked(MASK) if masked is not None else token}


def _auth_query(
    definition: Definition,
    values: Lookup,
    bearer_token: str | None,
    masked: frozenset[str] | None,
) -> list[tuple[str, str]]:
    """(ext) The query parameters a token auth's ``use`` adds to every request (docs/format.md,
    "Tokens from a request"); none without a token."""
    if not isinstance(definition.auth, TokenAuth) or bearer_token is None:
        return []
    auth = _auths.get(definition.auth)
    values = _with_token(values, bearer_token, masked)
    fields = []
    for name, render, _ in auth.query:
        value = render(values)
        if value is not None:
            fields.append((name, value))  # percent-encoded with the URL's query
    return fields


def render_credentials(
    definition: Definition,
    values: Mapping[str, Value],
    *,
    own: Auth | None = None,
    bearer_token: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The auth headers alone, rendered with the installation's property ``values``: those of
    ``own`` — (ext) a ``Media`` auth of its own (docs/format.md, "Media") — or, without it, those
    the definition's requests carry (its ``auth``, or the OAuth2 or JWT ``bearer_token`` the
    caller obtained; none without one). Raises :class:`RenderError` as :func:`render_request`
    does for a header value that cannot be sent."""
    if own is not None:
        return tuple(_credentials(_media_auths.get(own), values, None, None, "/Media/auth"))
    return tuple(_auth_headers(definition, values, bearer_token, None))


def _prepare(
    definition: Definition,
    variables: Mapping[str, Value],
    default_region: str | None,
    masked: bool,
) -> tuple[Lookup, frozenset[str] | None]:
    """The values to render with (numbers formatted, secrets masked) and the masked names."""
    values: Mapping[str, Value] = variables
    number_format = definition.number_format
    if number_format != "as_given":
        updates: dict[str, Value] = {}
        for name in NUMBER_VARIABLES:
            value = variables.get(name)
            if isinstance(value, str):
                updates[name] = format_number(value, number_format, default_region)
            elif isinstance(value, tuple):
                updates[name] = tuple(
                    format_number(v, number_format, default_region) if isinstance(v, str) else v
                    for v in value
                )
        if updates:
            values = {**variables, **updates}
    if not masked:
        return values, None
    hidden = frozenset(n for n in definition.secret_properties if values.get(n) is not None)
    return {**values, **dict.fromkeys(hidden, Masked(MASK))}, hidden


def _override(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Set ``name`` to ``value``, in place of any earlier header of that name."""
    lowered = name.lower()
    positions = [i for i, (existing, _) in enumerate(headers) if existing.lower() == lowered]
    if not positions:
        headers.append((name, value))
        return
    headers[positions[0]] = (name, value)
    for i in reversed(positions[1:]):
        del headers[i]


def _placed(error: RenderError, pointer: str) -> RenderError:
    """``error`` with ``pointer`` when it has none (a filter that cannot encode a value)."""
    return error if error.pointer else RenderError(str(error), pointer=pointer)


def render_request(
    definition: Definition,
    template: RequestTemplate,
    variables: Mapping[str, Value],
    *,
    bearer_token: str | None = None,
    boundary: str | None = None,
    masked: bool = False,
    default_region: str | None = None,
) -> RenderedRequest:
    """The HTTP request ``template`` describes, rendered with ``variables``.

    ``variables`` holds the request variables (``from``, ``to``, ``content`` …) and the
    installation's property values keyed by property name; absent or ``None`` means no value.
    ``bearer_token`` is the signed JWT or OAuth2 access token the caller obtained (used when the
    definition's auth is JWT or OAuth2). ``boundary`` is the multipart boundary (derived from the
    content when None). ``default_region`` reads national numbers for ``number_format``.
    ``masked`` renders for display, secrets replaced by :data:`MASK`.

    Raises :class:`RenderError` (with the template's JSON Pointer) when a value would change the
    URL's structure, a header value would hold a line break, or the body cannot be written.
    """
    if masked:
        # Fail exactly as the real request would; the masked one skips checks on masks.
        render_request(
            definition,
            template,
            variables,
            bearer_token=bearer_token,
            boundary=boundary,
            default_region=default_region,
        )
    compiled = _requests.get(template)
    values, hidden = _prepare(definition, variables, default_region, masked)
    if compiled.encoding_of is not None and ENCODING not in values:
        # (A split send sets it for every part: the whole text's encoding, docs/format.md,
        # "Several requests per send".)
        text = value_text(values.get(compiled.encoding_of))
        values = {**values, ENCODING: text_encoding(text)}
    if compiled.build:
        values = _with_built(compiled, values, hidden)
    pointer = f"{compiled.pointer}/request_parameters"
    body: bytes | None = None
    content_type: str | None = None
    extra_query = ""
    if compiled.query is not None:
        where = f"{compiled.pointer}/request_query"
        try:
            extra_query = encode_query(form_fields(compiled.query(values), where), where)
        except RenderError as e:
            raise _placed(e, where) from None
    if compiled.xml is not None:
        body, content_type = compiled.xml(values), compiled.content_type
    elif compiled.parameters is not None:
        try:
            tree = compiled.parameters(values)
        except RenderError as e:
            raise _placed(e, pointer) from None
        if compiled.in_query:
            query = encode_query(form_fields(tree, pointer), pointer)
            extra_query = (
                f"{extra_query}&{query}" if extra_query and query else extra_query or query
            )
        elif compiled.kind == "json":
            if tree is not MISSING:
                body, content_type = encode_json(tree, pointer), compiled.content_type
        elif compiled.kind == "form":
            body = encode_form(form_fields(tree, pointer), pointer)
            content_type = compiled.content_type
        else:
            body, used = encode_multipart(form_fields(tree, pointer), boundary, pointer)
            content_type = multipart_content_type(compiled.content_type, used)
    auth_query = _auth_query(definition, values, bearer_token, hidden)
    if auth_query:
        query = encode_query(auth_query, "/auth/use/query")
        if hidden is not None:  # the display shows the mask as other secrets in a URL
            query = query.replace(quote(MASK), MASK)
        extra_query = f"{extra_query}&{query}" if extra_query else query
    verbatim: Collection[str] = hidden or ()
    try:
        url = compiled.url.render(values, verbatim=verbatim, extra_query=extra_query)
    except RenderError as e:
        raise _placed(e, f"{compiled.pointer}/request_url") from None
    headers: list[tuple[str, str]] = []
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    for name, value in _auth_headers(definition, values, bearer_token, hidden):
        _override(headers, name, value)
    for name, render, where in compiled.headers:
        try:
            header_value = render(values)
        except RenderError as e:
            raise _placed(e, where) from None
        if header_value is not None:
            _override(headers, name, _check_value(header_value, where))
    return RenderedRequest(
        method=template.method.upper(), url=url, headers=tuple(headers), body=body
    )


def request_origins(definition: Definition, values: Mapping[str, Value]) -> tuple[str, ...]:
    """The origins (``scheme://host[:port]``) the definition's own requests go to — SendMessage,
    SendFile, their ``then``, Subscribe and Unsubscribe, (ext) a Media resolve request — with
    the installation's property ``values``, each once, in that order; a URL whose origin these
    values cannot make (a property without a value) gives none."""
    templates: list[RequestTemplate] = []
    for send in (definition.send_message, definition.send_file):
        while send is not None:
            templates.append(send)
            send = send.then
    templates.extend((*definition.subscribe, *definition.unsubscribe))
    resolve = definition.media.resolve  # (ext) docs/format.md, "Media given as an id"
    if resolve is not None and resolve.request is not None:
        templates.append(resolve.request)
    origins: dict[str, None] = {}
    for template in templates:
        try:
            origins.setdefault(_requests.get(template).url.origin_of(values))
        except RenderError:
            continue
    return tuple(origins)


def template_variables(template: RequestTemplate) -> frozenset[str]:
    """Every variable name the request uses: in its URL, query, parameters and request_headers,
    and (ext) in its ``find`` templates and ``only_if``."""
    names = text_names(template.url) | tree_names(template.parameters) | tree_names(template.query)
    for value in template.headers.values():
        names |= text_names(value)
    for rule in template.find:
        for _, text in rule.where:
            names |= text_names(text)
    if template.only_if is not None:
        names |= {template.only_if.name}
    for text in template.build.values():  # (ext) what its built values read
        names |= text_names(text)
    return names


def auth_variables(auth: Auth | None) -> frozenset[str]:
    """Every variable name the definition's ``auth`` renders into a request (its credentials);
    none for a token signed or fetched per request (JWT, OAuth2)."""
    if isinstance(auth, BasicAuth):
        return text_names(auth.username) | text_names(auth.password)
    if isinstance(auth, BearerAuth):
        return text_names(auth.token)
    if isinstance(auth, HeaderAuth):
        return frozenset().union(*(text_names(v) for v in auth.headers.values()))
    if isinstance(auth, TokenAuth):  # (ext) what its use renders beside the token
        used = [*auth.headers.values(), *auth.query.values()]
        return frozenset().union(*(text_names(v) for v in used)) - {TOKEN_VARIABLE}
    return frozenset()


def response_variables(template: RequestTemplate) -> frozenset[str]:
    """The variables a request's response_map (and (ext) its ``find``) captures for the requests
    after it (Subscribe and Unsubscribe lists); ``$error$`` is the reason for a refusal, not a
    variable."""
    return captured_names(template.response_map) | {
        name for rule in template.find for name, _ in rule.capture
    }
