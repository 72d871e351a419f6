"""Which placeholders may be used where (docs/format.md, "Placeholders"), and where a
definition's templates are.

A placeholder must name a property of the file or a variable allowed at its place. The table below
is the one docs/format.md gives; :func:`template_strings` walks a definition — even a broken one,
skipping whatever is not intact — and yields every template string with the scope that applies to
it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._each import EACH, ITEM, ITEM_VARIABLES, LISTS
from ._model import freeze
from ._patterns import optional_key
from ._placeholders import placeholders_in
from ._pointer import child
from ._template import captured_names

__all__ = [
    "ALL_VARIABLES",
    "CHAINED_RESPONSE_MAP",
    "LOOKUP_RESPONSE_MAP",
    "MEDIA_DOWNLOAD",
    "MEDIA_RESOLVE",
    "REQUEST_SCOPES",
    "SIGNALS",
    "TOKEN_REQUEST",
    "WHERE",
    "Scope",
    "TemplateString",
    "built_request_names",
    "media_resolve",
    "model_captures",
    "pattern_strings",
    "property_names",
    "request_pointers",
    "template_strings",
    "token_request",
    "tree_strings",
    "webhook_model_strings",
    "webhook_models",
    "with_built",
]

_EVERY_REQUEST = frozenset({"webhook_url"})
_SEND = _EVERY_REQUEST | {
    "from",
    "to",
    "content",
    "extension",
    "domain",
    "orgid",
    "gateway_id",
    "encoding",
    "reply_to",  # (ext) docs/format.md, "Replies, templates and reply-to"
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Scope:
    """A kind of place in a definition: what it is called and which variables it offers."""

    name: str
    variables: frozenset[str]
    captures: bool = False  # a pattern (response_map, webhook model) rather than a template
    optional: bool = False  # "$x?$" allowed (webhook models only)
    chained: bool = False  # a list of requests whose response_maps feed the requests after them
    introduces: bool = False  # its captures name new variables (a chained request's response_map)


#: (ext) docs/format.md, "Replies, templates and reply-to": a SendMessage's quick replies (their
#: count, and each item variable's values as a list) and its message template.
_REPLIES_AND_TEMPLATE = frozenset(
    {
        "reply_count",
        "reply_ids",
        "reply_titles",
        "reply_descriptions",
        "template_name",
        "template_language",
        "template_parameters",
    }
)
SEND_MESSAGE = Scope(name="SendMessage", variables=_SEND | _REPLIES_AND_TEMPLATE)
SEND_FILE = Scope(
    name="SendFile",
    variables=_SEND | {"text", "media_type", "filename", "media_urls", "media_kind", "media_kinds"},
)  # content is the media URL (the seed's "media_url": "$content$"); (ext) media_urls: all of them
#: (ext) docs/format.md, "Conversation signals": a typing indicator and a read mark name the
#: conversation and, when the provider wants it, the provider's id of the message they are about
#: (MarkRead: the inbound message read). They carry no text and no message of ours.
_SIGNAL = _EVERY_REQUEST | {"from", "to", "extension", "domain", "orgid", "messageid"}
SEND_TYPING = Scope(name="SendTyping", variables=_SIGNAL)
MARK_READ = Scope(name="MarkRead", variables=_SIGNAL)
#: (ext) The API sections that are signals, each one request made at once (never queued).
SIGNALS: Mapping[str, Scope] = {"SendTyping": SEND_TYPING, "MarkRead": MARK_READ}
#: (ext) docs/format.md, "Contact names": the lookup of an inbound message's sender, by its
#: address (``from``) and ours (``to``); its response_map captures names of its own, which only
#: its ``contact_name`` templates read.
LOOKUP_CONTACT = Scope(name="LookupContact", variables=_EVERY_REQUEST | {"from", "to"})
LOOKUP_RESPONSE_MAP = Scope(
    name="the LookupContact response_map",
    variables=frozenset({"error"}),
    captures=True,
    introduces=True,
)
#: (ext) docs/format.md, "Several requests per send": the variables a request has when it is one
#: of several (part, parts) and when it splits the text (text_parts).
EACH_VARIABLES = frozenset({"part", "parts"})
SPLIT_VARIABLES = frozenset({"text_parts"})
SUBSCRIBE = Scope(name="Subscribe", variables=_EVERY_REQUEST | {"orgid", "number"}, chained=True)
UNSUBSCRIBE = Scope(name="Unsubscribe", variables=_EVERY_REQUEST | {"number"}, chained=True)
RESPONSE_MAP = Scope(
    name="a response_map", variables=frozenset({"messageid", "status", "error"}), captures=True
)
#: (ext) a Subscribe or Unsubscribe request's response_map: ``$error$`` says why a refusal, every
#: other capture is a new variable of the requests after it in the same list.
CHAINED_RESPONSE_MAP = Scope(
    name="a Subscribe or Unsubscribe response_map",
    variables=frozenset({"error"}),
    captures=True,
    introduces=True,
)
WEBHOOK = Scope(
    name="a webhook model",
    variables=frozenset(
        {"from", "to", "content", "text", "url", "messageid", "event_key", "status", "error"}
        # (ext) our id, sent back by the provider: a receipt finds its message by it
        # (docs/format.md, "Receipts")
        | {"gateway_id"}
        # (ext) a file named by id (docs/format.md, "Media given as an id")
        | {"media_id"}
    ),
    captures=True,
    optional=True,
)
AUTH = Scope(name="auth", variables=frozenset())
#: (ext) docs/format.md, "Tokens from a request": the token request takes properties only, its
#: response_map captures the token, its lifetime and a refusal's reason, and ``use`` places the
#: token. None of these names is a variable anywhere else, so none is in ALL_VARIABLES.
TOKEN_REQUEST = Scope(name="the token request", variables=frozenset())
TOKEN_RESPONSE_MAP = Scope(
    name="the token request's response_map",
    variables=frozenset({"token", "expires_in", "error"}),
    captures=True,
)
TOKEN_USE = Scope(name="the token's use", variables=frozenset({"token"}))
OAUTH2 = Scope(name="OAuth2", variables=frozenset())
WEBHOOK_AUTH = Scope(name="WebhookAuth", variables=frozenset())
MEDIA_AUTH = Scope(name="Media auth", variables=frozenset())  # (ext) docs/format.md, "Media"
#: (ext) docs/format.md, "Media given as an id": the resolve request takes properties and the
#: file's id; its response_map captures any name for ``download`` (and ``$error$``, a refusal's
#: reason); ``download`` takes properties, the id and those captures.
MEDIA_RESOLVE = Scope(name="the Media resolve request", variables=frozenset({"media_id"}))
MEDIA_DOWNLOAD = "the Media download"  # a scope of its own per definition: its captures
MEDIA_RESOLVE_MAP = Scope(
    name="the Media resolve response_map",
    variables=frozenset({"error"}),
    captures=True,
    introduces=True,
)

#: The scopes whose templates are rendered as requests
_REQUESTS = (
    SEND_MESSAGE,
    SEND_FILE,
    SEND_TYPING,
    MARK_READ,
    LOOKUP_CONTACT,
    SUBSCRIBE,
    UNSUBSCRIBE,
)
_SCOPES = (*_REQUESTS, RESPONSE_MAP, WEBHOOK)
#: The names of the scopes whose templates are rendered as requests: filters and switches work
#: there; (ext) a Media resolve's request and download are rendered as requests are, and so is
#: the token request (docs/format.md, "Value filters": a Basic header it builds).
REQUEST_SCOPES = frozenset(s.name for s in _REQUESTS) | {
    MEDIA_RESOLVE.name,
    MEDIA_DOWNLOAD,
    TOKEN_REQUEST.name,
}
ALL_VARIABLES = frozenset().union(
    *(s.variables for s in _SCOPES), EACH_VARIABLES, SPLIT_VARIABLES, ITEM_VARIABLES
)

#: Where each variable can be used, for messages that explain why one is not available.
WHERE: Mapping[str, str] = {
    "from": "SendMessage, SendFile, SendTyping, MarkRead, LookupContact and webhook models",
    "to": "SendMessage, SendFile, SendTyping, MarkRead, LookupContact and webhook models",
    "content": "SendMessage, SendFile and webhook models",
    "text": "SendFile and webhook models",
    "url": "webhook models",
    "extension": "SendMessage, SendFile, SendTyping and MarkRead",
    "domain": "SendMessage, SendFile, SendTyping and MarkRead",
    "orgid": "SendMessage, SendFile, SendTyping, MarkRead and Subscribe",
    "messageid": "a response_map, webhook models, SendTyping and MarkRead",
    "event_key": "webhook models",
    "webhook_url": "every request but a Token auth's",
    "number": "Subscribe and Unsubscribe",
    "status": "a response_map and webhook models",
    "error": "a response_map and webhook models",
    "media_type": "SendFile",
    "filename": "SendFile",
    "gateway_id": "SendMessage, SendFile and webhook models",
    "encoding": "SendMessage and SendFile",
    "media_urls": "SendFile",
    "media_id": "webhook models and Media resolve",
    "part": "a SendMessage or SendFile request with split or for_each (one request per part or "
    "media item)",
    "parts": "a SendMessage or SendFile request with split or for_each (one request per part or "
    "media item)",
    "text_parts": "a SendMessage or SendFile request with split",
    "reply_to": "SendMessage and SendFile",
    "media_kind": "SendFile",
    "media_kinds": "SendFile",
    **dict.fromkeys(_REPLIES_AND_TEMPLATE, "SendMessage"),
    **{
        name: f'an item of {{"$each": "{item.name}"}} in {item.send}'
        for item in LISTS.values()
        for name in item.item_variables & ITEM_VARIABLES
    },
}


@dataclass(frozen=True, kw_only=True, slots=True)
class TemplateString:
    pointer: str
    text: str
    scope: Scope
    #: (ext) A webhook pattern string under a ``"key?"`` key (docs/format.md, "Webhook models"):
    #: its captures may have no value, as a ``$x?$``'s may.
    optional: bool = False


def property_names(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(pointer, name) of every property declared, in order, including duplicates."""
    found: list[tuple[str, str]] = []
    items = document.get("properties")
    if not isinstance(items, list):
        return found
    for i, item in enumerate(items):
        at = child("/properties", i)
        if isinstance(item, str):
            found.append((at, item))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            found.append((child(at, "name"), item["name"]))
    return found


def request_pointers(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Scope]]:
    """Every request object of the definition: (pointer, request, scope); (ext) the scope has the
    names the request builds (docs/format.md, "Value filters")."""
    for at, request, scope in _request_pointers(document):
        yield at, request, with_built(scope, request)


def built_request_names(request: Mapping[str, Any]) -> frozenset[str]:
    """(ext) The names a request's ``build`` gives (docs/format.md, "Value filters")."""
    build = request.get("build")
    return frozenset(str(n) for n in build) if isinstance(build, Mapping) else frozenset()


def with_built(scope: Scope, request: Mapping[str, Any]) -> Scope:
    """``scope`` with the names ``request`` builds among its variables."""
    built = built_request_names(request)
    return replace(scope, variables=scope.variables | built) if built else scope


def _request_pointers(
    document: Mapping[str, Any],
) -> Iterator[tuple[str, Mapping[str, Any], Scope]]:
    api = document.get("API")
    if isinstance(api, Mapping):
        for key, scope in (("SendMessage", SEND_MESSAGE), ("SendFile", SEND_FILE)):
            request = api.get(key)
            if isinstance(request, Mapping):
                yield f"/API/{key}", request, send_scope(scope, request)
                then = request.get("then")  # (ext) "Several requests per send"
                if isinstance(then, Mapping):
                    yield f"/API/{key}/then", then, send_scope(scope, then)
        for key, scope in SIGNALS.items():  # (ext) "Conversation signals"
            request = api.get(key)
            if isinstance(request, Mapping):
                yield f"/API/{key}", request, scope
        lookup = api.get("LookupContact")  # (ext) "Contact names"
        if isinstance(lookup, Mapping):
            yield "/API/LookupContact", lookup, LOOKUP_CONTACT
    kept = kept_names(document)
    for key, scope in (("Subscribe", SUBSCRIBE), ("Unsubscribe", UNSUBSCRIBE)):
        value = document.get(key)
        requests = [value] if isinstance(value, Mapping) else value
        if not isinstance(requests, list):
            continue
        # (ext) docs/format.md, "Values Subscribe keeps": Unsubscribe may use every value
        # Subscribe keeps; a Subscribe step only one that its only_if requires.
        captured = kept if key == "Unsubscribe" else frozenset()  # and by the requests before
        for i, request in enumerate(requests):
            if isinstance(request, Mapping):
                guarded = kept & {only_if_name(request, "present")}
                yield (
                    f"/{key}/{i}" if isinstance(value, list) else f"/{key}",
                    request,
                    replace(scope, variables=scope.variables | captured | guarded),
                )
                captured |= chained_captures(request)


def kept_names(document: Mapping[str, Any]) -> frozenset[str]:
    """(ext) The variables Subscribe's requests capture, which it keeps for its next run and for
    Unsubscribe (docs/format.md, "Values Subscribe keeps")."""
    value = document.get("Subscribe")
    requests = [value] if isinstance(value, Mapping) else value
    if not isinstance(requests, list):
        return frozenset()
    return frozenset().union(*(chained_captures(r) for r in requests if isinstance(r, Mapping)))


def only_if_name(request: Mapping[str, Any], test: str) -> str | None:
    """(ext) The variable a request's ``only_if`` tests with ``test`` (present, absent)."""
    only_if = request.get("only_if")
    name = only_if.get(test) if isinstance(only_if, Mapping) else None
    return name if isinstance(name, str) else None


def find_rules(request: Mapping[str, Any], at: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(ext) Each search of a request's ``find`` (one, or a list): (pointer, search)."""
    found = request.get("find")
    if isinstance(found, Mapping):
        yield f"{at}/find", found
    elif isinstance(found, list):
        for i, rule in enumerate(found):
            if isinstance(rule, Mapping):
                yield f"{at}/find/{i}", rule


def find_captures(request: Mapping[str, Any]) -> frozenset[str]:
    """(ext) The variables a request's ``find`` captures."""
    names: set[str] = set()
    for _, rule in find_rules(request, ""):
        capture = rule.get("capture")
        if isinstance(capture, Mapping):
            names.update(k for k in capture if isinstance(k, str))
    return frozenset(names)


def send_scope(scope: Scope, request: Mapping[str, Any]) -> Scope:
    """(ext) A send request's scope with the variables its ``split`` and ``for_each`` give
    (docs/format.md, "Several requests per send")."""
    split = "split" in request
    for_each = request.get("for_each", "part" if split else "once")
    extra = (EACH_VARIABLES if for_each in ("part", "media") else frozenset()) | (
        SPLIT_VARIABLES if split else frozenset()
    )
    return replace(scope, variables=scope.variables | extra) if extra else scope


def chained_captures(request: Mapping[str, Any]) -> frozenset[str]:
    """The variables a Subscribe or Unsubscribe request's response_map (and (ext) its ``find``)
    captures for the requests after it."""
    return map_captures(request) | find_captures(request)


def map_captures(request: Mapping[str, Any]) -> frozenset[str]:
    """The variables a request's response_map captures; that of a broken file captures none."""
    try:
        return captured_names(freeze(request.get("response_map")))
    except TypeError:
        return frozenset()


_AUTH_TEMPLATES = ("username", "password", "token", "key")
_OAUTH2_TEMPLATES = ("client_id", "client_secret", "authorization_endpoint", "token_endpoint")
_WEBHOOK_AUTH_TEMPLATES = ("secret", "auth_token", "public_key", "username", "password", "token")


def template_strings(document: Mapping[str, Any]) -> Iterator[TemplateString]:
    """Every string of ``document`` that is a template or a pattern, with its scope."""
    for at, request, scope in request_pointers(document):
        yield from _strings_at(request, at, ("request_url",), scope)
        yield from _build_strings(request, at, scope)
        yield from tree_strings(
            request.get("request_parameters"), f"{at}/request_parameters", scope
        )
        headers = request.get("request_headers")
        if isinstance(headers, Mapping):
            yield from tree_strings(headers, f"{at}/request_headers", scope)
        # (ext) docs/format.md, "Requests": query parameters beside request_parameters
        yield from tree_strings(request.get("request_query"), f"{at}/request_query", scope)
        yield from tree_strings(
            request.get("response_map"),
            f"{at}/response_map",
            _response_map_scope(scope),
        )
        for rule_at, rule in find_rules(request, at):  # (ext) "Look up before create"
            where = rule.get("where")
            if isinstance(where, Mapping):
                yield from tree_strings(where, f"{rule_at}/where", scope)
    yield from _token_auth_strings(document)
    auth = document.get("auth")
    if isinstance(auth, Mapping):
        yield from _strings_at(auth, "/auth", _AUTH_TEMPLATES, AUTH)
        for key in ("headers", "claims"):
            if isinstance(auth.get(key), Mapping):
                yield from tree_strings(auth[key], f"/auth/{key}", AUTH)
    oauth2 = document.get("OAuth2")
    if isinstance(oauth2, Mapping):
        yield from _strings_at(oauth2, "/OAuth2", _OAUTH2_TEMPLATES, OAUTH2)
        parameters = oauth2.get("authorization_parameters")
        if isinstance(parameters, Mapping):
            at = "/OAuth2/authorization_parameters"
            yield from _strings_at(parameters, at, ("default",), OAUTH2)
    media = document.get("Media")  # (ext) docs/format.md, "Media": credentials of its own
    media_auth = media.get("auth") if isinstance(media, Mapping) else None
    if isinstance(media_auth, Mapping):
        yield from _strings_at(media_auth, "/Media/auth", _AUTH_TEMPLATES, MEDIA_AUTH)
        if isinstance(media_auth.get("headers"), Mapping):
            yield from tree_strings(media_auth["headers"], "/Media/auth/headers", MEDIA_AUTH)
    yield from _media_resolve_strings(media)
    webhook_auth = document.get("WebhookAuth")
    if isinstance(webhook_auth, Mapping):
        yield from _strings_at(webhook_auth, "/WebhookAuth", _WEBHOOK_AUTH_TEMPLATES, WEBHOOK_AUTH)
    for i, model in webhook_models(document):
        yield from webhook_model_strings(i, model)


def _response_map_scope(scope: Scope) -> Scope:
    """What a request's response_map may capture: a Subscribe step's and (ext) a contact lookup's
    name new variables, a send's and a signal's the answer's id, status and error."""
    if scope.chained:
        return CHAINED_RESPONSE_MAP
    return LOOKUP_RESPONSE_MAP if scope is LOOKUP_CONTACT else RESPONSE_MAP


def media_resolve(media: object) -> Mapping[str, Any] | None:
    """(ext) A ``Media`` object's ``resolve``, if it is an object."""
    resolve = media.get("resolve") if isinstance(media, Mapping) else None
    return resolve if isinstance(resolve, Mapping) else None


def _media_resolve_strings(media: object) -> Iterator[TemplateString]:
    """(ext) The templates of ``Media.resolve`` (docs/format.md, "Media given as an id"): its
    request's, its response_map's and ``download``, which may use what the map captures."""
    resolve = media_resolve(media)
    if resolve is None:
        return
    at = "/Media/resolve"
    yield from _strings_at(resolve, at, ("request_url",), MEDIA_RESOLVE)
    for key in ("request_parameters", "request_query", "request_headers"):
        yield from tree_strings(resolve.get(key), f"{at}/{key}", MEDIA_RESOLVE)
    yield from tree_strings(resolve.get("response_map"), f"{at}/response_map", MEDIA_RESOLVE_MAP)
    captured = map_captures(resolve)
    download = replace(
        MEDIA_RESOLVE, name=MEDIA_DOWNLOAD, variables=MEDIA_RESOLVE.variables | captured
    )
    yield from _strings_at(resolve, at, ("download",), download)


def _build_strings(request: Mapping[str, Any], at: str, scope: Scope) -> Iterator[TemplateString]:
    """(ext) A request's ``build`` templates: they read its variables, never a built name."""
    build = request.get("build")
    if isinstance(build, Mapping):
        own = replace(scope, variables=scope.variables - built_request_names(request))
        yield from tree_strings(build, f"{at}/build", own)


def token_request(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """(ext) The request of a Token ``auth`` (docs/format.md, "Tokens from a request"), if the
    file has one that is an object."""
    auth = document.get("auth")
    if not isinstance(auth, Mapping) or auth.get("type") != "Token":
        return None
    request = auth.get("request")
    return request if isinstance(request, Mapping) else None


def _token_auth_strings(document: Mapping[str, Any]) -> Iterator[TemplateString]:
    """(ext) The templates of a Token ``auth``: its request's, its response_map's, its use's."""
    request = token_request(document)
    at = "/auth/request"
    if request is not None:
        scope = with_built(TOKEN_REQUEST, request)
        yield from _strings_at(request, at, ("request_url",), scope)
        yield from _build_strings(request, at, scope)
        for key in ("request_parameters", "request_query", "request_headers"):
            yield from tree_strings(request.get(key), f"{at}/{key}", scope)
        yield from tree_strings(
            request.get("response_map"), f"{at}/response_map", TOKEN_RESPONSE_MAP
        )
    auth = document.get("auth")
    use = auth.get("use") if isinstance(auth, Mapping) and auth.get("type") == "Token" else None
    if isinstance(use, Mapping):
        for key in ("headers", "query"):
            if isinstance(use.get(key), Mapping):
                yield from tree_strings(use[key], f"/auth/use/{key}", TOKEN_USE)


def webhook_models(document: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Each webhook model of the definition that is an object, with its index in ``Webhook``."""
    models = document.get("Webhook")
    for i, model in enumerate(models if isinstance(models, list) else ()):
        if isinstance(model, Mapping):
            yield i, model


def model_captures(i: int, model: Mapping[str, Any]) -> set[str]:
    """The names of every placeholder in the model at ``/Webhook/i``'s patterns."""
    return {p.name for t in webhook_model_strings(i, model) for p in placeholders_in(t.text)}


def webhook_model_strings(i: int, model: Mapping[str, Any]) -> Iterator[TemplateString]:
    """The pattern strings of the model at ``/Webhook/i``: its parameters, then (ext) headers,
    then (ext) its ``enclosing`` patterns ("Nested lists")."""
    yield from pattern_strings(model.get("request_parameters"), f"/Webhook/{i}/request_parameters")
    headers = model.get("request_headers")
    if isinstance(headers, Mapping):
        yield from tree_strings(headers, f"/Webhook/{i}/request_headers", WEBHOOK)
    enclosing = model.get("enclosing")
    if isinstance(enclosing, Mapping):
        for key, tree in enclosing.items():  # its keys are pointers, never optional keys
            yield from pattern_strings(tree, child(f"/Webhook/{i}/enclosing", str(key)))


def pattern_strings(tree: object, at: str, optional: bool = False) -> Iterator[TemplateString]:
    """The string leaves of a webhook pattern, each marked ``optional`` when it is under a
    ``"key?"`` key (docs/format.md, "Webhook models")."""
    if isinstance(tree, str):
        yield TemplateString(pointer=at, text=tree, scope=WEBHOOK, optional=optional)
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            inner = optional or optional_key(str(key))[1]
            yield from pattern_strings(value, child(at, key), inner)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from pattern_strings(value, child(at, i), optional)


def tree_strings(tree: object, at: str, scope: Scope) -> Iterator[TemplateString]:
    """The string leaves of a JSON tree (values only, never keys); (ext) those of an ``$each``
    object's ``item`` have its list's item variables too (docs/format.md, "Lists of items")."""
    if isinstance(tree, str):
        yield TemplateString(pointer=at, text=tree, scope=scope)
    elif isinstance(tree, Mapping):
        listed = LISTS.get(tree[EACH]) if isinstance(tree.get(EACH), str) else None
        for key, value in tree.items():
            inner = scope
            if listed is not None and key == ITEM:
                inner = replace(scope, variables=scope.variables | listed.item_variables)
            yield from tree_strings(value, child(at, key), inner)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from tree_strings(value, child(at, i), scope)


def _strings_at(
    obj: Mapping[str, Any], at: str, keys: tuple[str, ...], scope: Scope
) -> Iterator[TemplateString]:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str):
            yield TemplateString(pointer=child(at, key), text=value, scope=scope)
