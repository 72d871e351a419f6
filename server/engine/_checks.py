"""The semantic half of validation: what the schema cannot express (docs/format.md, "Checking a
file").

One small function per check. Each takes the plain JSON document — which may be broken elsewhere —
checks only the parts intact enough to check, and yields problems with their pointers. Nothing here
repeats what the schema already reports.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._answer_checks import check_webhook_answers
from ._body import parameters_in_query
from ._contact_lookup_checks import CONTACT_LOOKUP_CHECKS
from ._correlation_checks import CORRELATION_CHECKS, correlates_by_our_id
from ._each_checks import EACH_CHECKS
from ._encoding_checks import ENCODING_CHECKS
from ._errors import Problem
from ._event_value_checks import EVENT_VALUE_CHECKS, built_names, declared_captures
from ._filter_checks import FILTER_CHECKS
from ._find_checks import check_find
from ._handshake_checks import HANDSHAKE_CHECKS, handshake_templates
from ._media_checks import MEDIA_CHECKS
from ._nested_each_checks import check_nested_each
from ._optional_key_checks import check_optional_keys
from ._patterns import optional_key
from ._placeholders import Placeholder, has_stray_dollar, parse_template, placeholders_in
from ._pointer import child
from ._repeated_checks import check_repeated
from ._request_build_checks import check_request_builds
from ._request_shape_checks import check_request_shapes
from ._response_rule_checks import check_response_rules
from ._send_plan_checks import check_send_plans
from ._template import BASE_URL_FILTER
from ._throughput_checks import THROUGHPUT_CHECKS
from ._token_auth_checks import TOKEN_AUTH_CHECKS
from ._variables import (
    ALL_VARIABLES,
    RESPONSE_MAP,
    WHERE,
    Scope,
    media_resolve,
    property_names,
    request_pointers,
    template_strings,
    token_request,
    tree_strings,
    webhook_model_strings,
    webhook_models,
)
from ._variants import used_in_variants
from ._webhook_auth_checks import check_webhook_auth
from ._xml import is_xml
from ._xml_template import template_problems as xml_template_problems

__all__ = ["CHECKS", "semantic_problems"]

Check = Callable[[Mapping[str, Any]], Iterator[Problem]]


def semantic_problems(document: Mapping[str, Any]) -> list[Problem]:
    return [problem for check in CHECKS for problem in check(document)]


def _error(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message)


def _warning(at: str, message: str) -> Problem:
    return Problem(pointer=at, message=message, severity="warning")


# -- properties -----------------------------------------------------------------------------------


def check_property_names(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Names must work as placeholders, be unique, and not hide a variable."""
    seen: set[str] = set()
    for at, name in property_names(document):
        if "$" in name:
            yield _error(at, f'property name "{name}" cannot contain "$"')
        elif "|" in name:
            yield _error(
                at, f'property name "{name}" cannot contain "|" ($name|filter$ encodes a value)'
            )
        elif "\n" in name or "\r" in name:
            yield _error(at, "a property name cannot contain a line break")
        elif name.endswith("?"):
            yield _error(
                at, f'property name "{name}" cannot end with "?" ($x?$ is an optional capture)'
            )
        elif name in ALL_VARIABLES:
            yield _error(
                at,
                f'property name "{name}" is the name of a variable; ${name}$ would be ambiguous, '
                "rename the property",
            )
        if name in seen:
            yield _error(at, f'property "{name}" is declared more than once')
        seen.add(name)


def check_unused_properties(document: Mapping[str, Any]) -> Iterator[Problem]:
    used = {p.name for t in template_strings(document) for p in placeholders_in(t.text)}
    used |= used_in_variants(document)  # (ext) docs/format.md, "Variants"
    # (ext) docs/format.md, "Verification handshakes"
    used |= {p.name for _, text in handshake_templates(document) for p in placeholders_in(text)}
    reported: set[str] = set()
    for at, name in property_names(document):
        if name not in used and name not in reported:
            reported.add(name)
            yield _warning(
                at, f'property "{name}" is declared but never used (no ${name}$ in the file)'
            )


# -- placeholders ---------------------------------------------------------------------------------


def check_placeholders(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Every placeholder names a property or a variable available at its place; no stray "$"."""
    properties = {name for _, name in property_names(document)}
    # With the properties list itself broken, which names it holds is unknown, so no placeholder
    # is called unknown for want of a property (the list's own error says why; docs/format.md,
    # "Checking a file").
    known_properties = isinstance(document.get("properties", []), list)
    declared = declared_captures(document)  # (ext) "Built values, extra fields and …"
    for template in template_strings(document):
        scope = template.scope
        model_at = "/".join(template.pointer.split("/")[:3]) + "/"
        used = declared.get(model_at, set()) if scope.optional else set()
        if has_stray_dollar(template.text):
            yield _error(
                template.pointer,
                'a "$" here does not open a placeholder: write "$$" for a literal dollar sign, '
                "or close the placeholder ($name$)",
            )
        for placeholder in placeholders_in(template.text):
            name = placeholder.name
            shown = placeholder.shown
            if not name:
                continue  # "$|filter$": the filter check says a name is needed
            if placeholder.optional and not scope.optional:
                yield _error(
                    template.pointer,
                    f"{shown} is an optional capture, which only webhook models have; "
                    f"write ${name}$",
                )
            if scope.introduces:
                yield from _check_new_variable(template.pointer, shown, name, properties, scope)
                continue
            if name in properties or name in scope.variables or name in used:
                continue
            if name in ALL_VARIABLES:
                yield _error(
                    template.pointer,
                    f"{shown} is not available in {scope.name}; it can be used in {WHERE[name]}",
                )
                continue
            if not known_properties:
                continue
            candidates = sorted(properties | scope.variables)
            guess = _guess(name, candidates)
            hint = f" (did you mean ${guess}$?)" if guess else ""
            if scope.variables:
                reason = f"not a property of this file, nor a variable of {scope.name}"
            else:
                reason = f'only properties can be used in {scope.name}, and there is no "{name}"'
            yield _error(template.pointer, f"unknown placeholder {shown}: {reason}{hint}")


def _check_new_variable(
    at: str, shown: str, name: str, properties: set[str], scope: Scope
) -> Iterator[Problem]:
    """A capture that names a new variable must not hide a property or a gateway variable."""
    if name in scope.variables or name in RESPONSE_MAP.variables:
        # messageid, status and error are response_map captures anywhere (docs/format.md,
        # "Subscribe and Unsubscribe")
        return
    if name in properties:
        yield _error(
            at,
            f'{shown} would hide the property "{name}"; a capture in {scope.name} names a new '
            "variable for the requests after it, so give it a name of its own",
        )
    elif name in ALL_VARIABLES:
        yield _error(
            at,
            f"{shown} would hide the gateway's variable of that name; a capture in {scope.name} "
            "names a new variable for the requests after it, so give it a name of its own",
        )


# -- auth -----------------------------------------------------------------------------------------


def check_auth_exclusive(document: Mapping[str, Any]) -> Iterator[Problem]:
    if "auth" in document and "OAuth2" in document:
        yield _error(
            "/OAuth2",
            "auth and OAuth2 cannot both be present: OAuth2 supplies the Authorization header; "
            "keep one of them",
        )


def check_oauth2_flow(document: Mapping[str, Any]) -> Iterator[Problem]:
    oauth2 = document.get("OAuth2")
    if not isinstance(oauth2, Mapping):
        return
    flow = oauth2.get("flow_type")
    kind = flow.get("default", "0") if isinstance(flow, Mapping) else "0"
    if kind == "0" and "authorization_endpoint" not in oauth2:
        yield _error(
            "/OAuth2",
            'the web server flow (flow_type "0", the default) needs an authorization_endpoint; '
            'add one, or use flow_type {"default": "1"} for client credentials',
        )
    parameters = oauth2.get("token_parameters")
    if isinstance(parameters, Mapping) and isinstance(parameters.get("content_type"), str):
        media = _media_type(parameters["content_type"])
        if media != _FORM and not _is_json(media):
            yield _error(
                "/OAuth2/token_parameters/content_type",
                f'the token request can be sent as {_FORM} or JSON, not "{media}"',
            )


# -- requests -------------------------------------------------------------------------------------


def _all_requests(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every request object: the definition's, then (ext) a Token auth's token request
    (docs/format.md, "Tokens from a request"), which is written and encoded like them."""
    for at, request, _ in request_pointers(document):
        yield at, request
    token = token_request(document)
    if token is not None:
        yield "/auth/request", token
    resolve = media_resolve(document.get("Media"))  # (ext) "Media given as an id"
    if resolve is not None and "request_url" in resolve:
        yield "/Media/resolve", resolve


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def url_problem(text: str, base_url_ok: bool = False) -> str | None:
    """Why ``text`` is not an http(s) URL template, or None when it is one. With
    ``base_url_ok`` (a request_url), ``$name|base_url$`` may open it (docs/format.md,
    "Requests")."""
    segments = parse_template(text)
    if not segments:
        return None  # empty: the schema says so
    first = segments[0]
    if isinstance(first, Placeholder) and BASE_URL_FILTER in first.filters and base_url_ok:
        after = segments[1] if len(segments) > 1 else "/"
        if isinstance(after, str) and after[:1] in ("/", "?"):
            return None
        return (
            f"continues after {first.shown} with neither / nor ?: the base URL is a whole "
            "origin and path, so the template goes on with its path or its query"
        )
    if isinstance(first, Placeholder):
        return (
            f"starts with the placeholder ${first.name}$: write the scheme out "
            "(https:// or http://); a placeholder may stand for the host, never for the scheme"
        )
    found = _SCHEME.match(first)
    if found is None:
        return "must be an http or https URL, starting with https:// or http://"
    scheme = found.group(1).lower()
    if scheme not in ("http", "https"):
        return f'uses the "{scheme}" scheme; only http and https URLs are accepted'
    after = first[found.end() :]
    if (not after and len(segments) == 1) or after[:1] in ("/", "?", "#"):
        return "has no host after the scheme"
    return None


def check_urls(document: Mapping[str, Any]) -> Iterator[Problem]:
    places: list[tuple[str, object]] = [
        (f"{at}/request_url", request.get("request_url")) for at, request in _all_requests(document)
    ]
    requests = len(places)
    oauth2 = document.get("OAuth2")
    if isinstance(oauth2, Mapping):
        for key in ("authorization_endpoint", "token_endpoint"):
            places.append((f"/OAuth2/{key}", oauth2.get(key)))
    resolve = media_resolve(document.get("Media"))  # (ext) the file's URL may be a base_url
    if resolve is not None:
        places.insert(requests, ("/Media/resolve/download", resolve.get("download")))
        requests += 1
    places.append(("/logo", document.get("logo")))  # an optional URL (docs/format.md, "The file")
    for index, (at, url) in enumerate(places):
        if isinstance(url, str):
            reason = url_problem(url, base_url_ok=index < requests)
            if reason:
                yield _error(at, f"{at.rsplit('/', 1)[-1]} {reason}")


_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    kind, _, subtype = media.partition("/")
    return bool(kind) and (subtype == "json" or subtype.endswith("+json"))


def check_bodies(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A content type msgbridge can encode, and parameters that fit it."""
    for at, request in _all_requests(document):
        content_type = request.get("request_content_type", "application/json")
        if not isinstance(content_type, str):
            continue
        media = _media_type(content_type)
        if media not in (_FORM, _MULTIPART) and not _is_json(media) and not is_xml(media):
            yield _error(
                f"{at}/request_content_type",
                f'unsupported request_content_type "{content_type}": use a JSON type '
                f"(application/json, or any …/json or …+json type), {_FORM}, {_MULTIPART} "
                "or an XML type (application/xml, text/xml, any …+xml type)",
            )
            continue
        parameters = request.get("request_parameters")
        method = request.get("request_method")
        # (ext) request_parameters_in places them in the query or the body, for any method
        in_query = parameters_in_query(method, request.get("request_parameters_in"))
        if not in_query and (is_xml(media) or isinstance(parameters, str)):
            yield from _xml_body_problems(at, media, parameters)
            continue
        if parameters is None or isinstance(parameters, Mapping):
            continue
        if in_query:
            sender = (
                f"a {method} request"
                if "request_parameters_in" not in request
                else 'request_parameters_in "query"'
            )
            yield _error(
                f"{at}/request_parameters",
                f"{sender} sends its parameters as a query string, "
                "so request_parameters must be an object",
            )
        elif media in (_FORM, _MULTIPART):
            yield _error(
                f"{at}/request_parameters",
                f"a {media} body is made of named fields, so request_parameters must be an object",
            )


# -- XML bodies (docs/format.md, "XML bodies") ----------------------------------------------------


def _xml_body_problems(at: str, media: str, parameters: object) -> Iterator[Problem]:
    """An XML body is a template string, well-formed with sample values; a string is XML only."""
    where = f"{at}/request_parameters"
    if not is_xml(media):
        yield _error(
            where,
            "a string request_parameters is an XML document template: use an XML "
            "request_content_type (application/xml, text/xml, any …+xml type), or an object",
        )
    elif parameters is not None and not isinstance(parameters, str):
        yield _error(
            where,
            f"a {media} body is written as the XML document itself: "
            "request_parameters must be a string with placeholders in text and attribute values",
        )
    elif isinstance(parameters, str):
        for message in xml_template_problems(parameters):
            yield _error(where, message)


def check_response_maps(document: Mapping[str, Any]) -> Iterator[Problem]:
    """SendMessage and SendFile should capture the provider's message id (docs/format.md,
    "Checking a file")."""
    api = document.get("API")
    if not isinstance(api, Mapping):
        return
    # (ext) Receipts that find their message by our id need no provider id (docs/format.md,
    # "Receipts"): such a send is complete without a response_map.
    by_our_id = correlates_by_our_id(document)
    for key in ("SendMessage", "SendFile"):
        request = api.get(key)
        if not isinstance(request, Mapping):
            continue
        at = f"/API/{key}"
        response_map = request.get("response_map")
        if response_map is None and by_our_id:
            continue
        if response_map is None:
            yield _warning(
                at,
                f"{key} has no response_map, so the provider's message id is never captured "
                "and delivery reports cannot be matched to the message",
            )
            continue
        at = f"{at}/response_map"
        if isinstance(response_map, str) and response_map != "$messageid$":
            yield _error(
                at, 'a response_map that is a string must be exactly "$messageid$" (the whole body)'
            )
            continue
        captures = {
            p.name
            for t in tree_strings(response_map, at, RESPONSE_MAP)
            for p in placeholders_in(t.text)
        }
        if "messageid" not in captures and not by_our_id:
            yield _warning(
                at,
                "this response_map never captures $messageid$, so delivery reports cannot be "
                "matched to the message",
            )


# -- patterns -------------------------------------------------------------------------------------


def check_list_patterns(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A list in a pattern holds exactly one pattern, applied to the elements (docs/format.md,
    "response_map" and "Webhook models")."""
    places: list[tuple[str, object]] = [
        (f"{at}/response_map", request.get("response_map"))
        for at, request in _all_requests(document)
    ]
    for i, model in webhook_models(document):
        places.append((f"/Webhook/{i}/request_parameters", model.get("request_parameters")))
        enclosing = model.get("enclosing")  # (ext) "Nested lists"
        if isinstance(enclosing, Mapping):
            places.extend((child(f"/Webhook/{i}/enclosing", k), v) for k, v in enclosing.items())
    for at, tree in places:
        for where, items in _lists(tree, at):
            if len(items) != 1:
                yield _error(
                    where,
                    "a list in a pattern holds exactly one pattern, which is applied to the "
                    f"elements of the list; this one holds {len(items)}",
                )


def _lists(tree: object, at: str) -> Iterator[tuple[str, list[Any]]]:
    if isinstance(tree, list):
        yield at, tree
        for i, item in enumerate(tree):
            yield from _lists(item, child(at, i))
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _lists(value, child(at, key))


_NEEDS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    # each inner tuple: one of these names must be captured
    "message": (("from",), ("to",), ("content", "text")),
    "mms": (("from",), ("to",), ("url", "media_id")),  # (ext) "Media given as an id"
    "messageDelivered": (("messageid",),),
    "messageFailed": (("messageid",),),
    "messageSent": (("messageid",),),
    # docs/format.md, "More event types": a number event names both numbers; a read receipt
    # its message; a status update its message and the provider's status text.
    "optedOut": (("from",), ("to",)),
    "optedIn": (("from",), ("to",)),
    "messageRead": (("messageid",),),
    "messageStatus": (("messageid",), ("status",)),
    # (ext) docs/format.md, "Conversation signals": about a conversation, so both its ends (``to``
    # may be ``$to?$``); a deleted message also names the message, by the provider's id.
    "typing": (("from",), ("to",)),
    "conversationStarted": (("from",), ("to",)),
    "messageDeleted": (("from",), ("to",), ("messageid",)),
}
#: (ext) A receipt that captures our id needs no provider id (docs/format.md, "Receipts": by our
#: id).
_STANDS_FOR = {"gateway_id": "messageid"}
#: (ext) Captures an optional ``$x?$`` satisfies: a message whose ``to`` the provider may leave out
#: goes to the installation's number (docs/format.md, "Numbers and routing": without ``to``).
_OPTIONAL_COUNTS = frozenset({"to"})
#: (ext) Captures an optional ``$x|default:…?$`` satisfies: a message's text, which a media message
#: may leave out (docs/format.md, "Webhook models"). A default never stands for an address or an
#: id: a constant message id would make every message without one a duplicate of the first.
_DEFAULT_COUNTS = frozenset({"content", "text"})


def _counts(placeholder: Placeholder, optional: bool) -> bool:
    """Whether a capture counts for what its model must capture."""
    if not (placeholder.optional or optional) or placeholder.name in _OPTIONAL_COUNTS:
        return True
    return placeholder.name in _DEFAULT_COUNTS and any(
        f.startswith("default:") for f in placeholder.filters
    )


def check_webhook_events(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A model must capture what its event needs (docs/format.md, "Webhook models")."""
    for i, model in webhook_models(document):
        event_type = model.get("event_type")
        pattern = model.get("request_parameters")
        if not isinstance(event_type, str) or event_type not in _NEEDS:
            continue
        if not isinstance(pattern, Mapping):
            continue
        also = model.get("also")
        types = [event_type, *(also if isinstance(also, list) else ())]
        at = f"/Webhook/{i}/request_parameters"
        captured = {
            p.name
            for t in webhook_model_strings(i, model)
            for p in placeholders_in(t.text)
            if _counts(p, t.optional)
        }
        captured |= {_STANDS_FOR[name] for name in captured if name in _STANDS_FOR}
        captured |= built_names(i, model)  # (ext) "Built values, …"
        for event_type in dict.fromkeys(t for t in types if t in _NEEDS):
            yield from _lacking(at, event_type, captured)


def _lacking(at: str, event_type: str, captured: set[str]) -> Iterator[Problem]:
    """What a model that gives ``event_type`` does not capture of what that event needs."""
    missing = [names for names in _NEEDS[event_type] if not captured.intersection(names)]
    if not missing:
        return
    needs = _either([_alternatives(names) for names in _NEEDS[event_type]])
    lacks = _either([_alternatives(names) for names in missing])
    hint = (
        "; $to?$ does, for a provider that may leave the receiving number out"
        if ("to",) in missing
        else ""
    )
    event = f'event_type "{event_type}"'
    yield _error(
        at,
        f"a model of {event} must capture {needs}; this one does not "
        f"capture {lacks} (an optional $x?$ capture does not count{hint})",
    )


#: (ext) The events one payload may give together: an inbound message and what the provider says
#: it means for consent (docs/format.md, "More event types").
_ALSO = frozenset({"message", "mms", "optedOut", "optedIn"})


def check_also(document: Mapping[str, Any]) -> Iterator[Problem]:
    """(ext) ``also`` adds inbound events to an inbound model's own, each once."""
    for i, model in webhook_models(document):
        also = model.get("also")
        event_type = model.get("event_type")
        if not isinstance(also, list) or not isinstance(event_type, str):
            continue
        at = f"/Webhook/{i}/also"
        if event_type not in _ALSO:
            yield _error(
                at,
                f'a model of event_type "{event_type}" gives one event: only message, mms, '
                "optedOut and optedIn models may give more (a receipt reports on one message)",
            )
            continue
        for j, listed in enumerate(also):
            if listed == event_type:
                yield _error(
                    f"{at}/{j}", f'"{listed}" is the model\'s own event_type: it is given already'
                )


def check_webhook_header_names(document: Mapping[str, Any]) -> Iterator[Problem]:
    """(ext) Header names compare case-insensitively, so a model names each header once."""
    for i, model in webhook_models(document):
        headers = model.get("request_headers")
        if not isinstance(headers, Mapping):
            continue
        seen: dict[str, str] = {}
        for name in headers:
            first = seen.setdefault(str(name).lower(), str(name))
            if first != name:
                yield _error(
                    child(f"/Webhook/{i}/request_headers", str(name)),
                    f'"{name}" and "{first}" name the same header (header names ignore case); '
                    "keep one",
                )


def check_webhook_constraints(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Two models with the same constraints can only be told apart by their captures
    (docs/format.md, "Choosing a model")."""
    properties = {name for _, name in property_names(document)}
    first: dict[object, tuple[int, str]] = {}
    for i, model in webhook_models(document):
        event_key = model.get("event_key")
        pattern = model.get("request_parameters")
        method = model.get("request_method")
        each = model.get("each")
        if not (isinstance(event_key, str) and isinstance(pattern, Mapping)):
            continue
        if not isinstance(method, str) or not (each is None or isinstance(each, str)):
            continue
        absent = model.get("absent")
        gone = (
            frozenset(absent)
            if isinstance(absent, list) and all(isinstance(a, str) for a in absent)
            else frozenset()
        )
        constraints = frozenset(_constraints(pattern, event_key, properties, ()))
        headers = model.get("request_headers")
        if isinstance(headers, Mapping):
            lowered = {str(name).lower(): value for name, value in headers.items()}
            header_path = (_HEADERS,)
            constraints |= frozenset(_constraints(lowered, event_key, properties, header_path))
        enclosing = model.get("enclosing")  # (ext) "Nested lists": literals around the payload
        if isinstance(enclosing, Mapping):
            for at, tree in enclosing.items():
                place = (*_ENCLOSING, at)
                constraints |= frozenset(_constraints(tree, event_key, properties, place))
        signature = (method, each, constraints, gone)
        if signature not in first:
            first[signature] = (i, event_key)
            continue
        j, other_key = first[signature]
        if other_key == event_key:
            # A warning only (docs/format.md, "Choosing a model"): the payload goes to the model
            # with more captures.
            yield _warning(
                f"/Webhook/{i}",
                f'this model has the same event_key ("{event_key}") and the same constraints as '
                f"/Webhook/{j}: a payload both match goes to the one with more captures, then to "
                "the earlier one; a literal that distinguishes them makes the choice explicit",
            )
        else:
            yield _warning(
                f"/Webhook/{i}",
                f"this model has the same constraints as /Webhook/{j}: a payload both match goes "
                "to the one with more captures, then to the earlier one in the file",
            )


_ANY_ELEMENT = ("list element",)  # a path step into a list pattern; never equal to a key
_HEADERS = ("request headers",)  # the first path step of a header constraint; never a key
_ENCLOSING = ("enclosing",)  # the first path step of an enclosing constraint; never a key


def _constraints(
    pattern: object, event_key: str, properties: set[str], path: tuple[object, ...]
) -> Iterator[tuple[object, ...]]:
    """The literal constraints of a pattern, each with its place (docs/format.md, "Choosing a
    model")."""
    if isinstance(pattern, Mapping):
        for key, value in pattern.items():
            if not optional_key(str(key))[1]:  # (ext) an optional key's literals are no constraint
                yield from _constraints(value, event_key, properties, (*path, key))
    elif isinstance(pattern, list):
        for item in pattern:
            yield from _constraints(item, event_key, properties, (*path, _ANY_ELEMENT))
    elif isinstance(pattern, str):
        parts: list[object] = []
        for segment in parse_template(pattern):
            if isinstance(segment, str):
                parts.append(segment)
            elif segment.name == "event_key" and not segment.optional:
                parts.append(event_key)
            elif segment.name in properties:
                parts.append(("property", segment.name))
            else:
                parts.append(None)  # a capture
        if any(part is not None for part in parts):
            yield (path, tuple(_merge(parts)))
    else:  # a JSON literal compares as text
        yield (path, (_as_text(pattern),))


def _merge(parts: list[object]) -> Iterator[object]:
    """Adjacent literal texts as one (``$event_key$.x`` equals ``message.x``)."""
    text: list[str] = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
            continue
        if text:
            yield "".join(text)
            text = []
        yield part
    if text:
        yield "".join(text)


def _as_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _alternatives(names: tuple[str, ...]) -> str:
    first, *others = names
    return f"${first}$" + "".join(f" (or ${n}$)" for n in others)


def _either(options: list[str]) -> str:
    if len(options) <= 1:
        return "".join(options)
    return f"{', '.join(options[:-1])} and {options[-1]}"


def _guess(word: str, options: list[str]) -> str | None:
    for option in options:
        if option.lower() == word.lower():
            return option
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return close[0] if close else None


#: The checks, in the order their problems are reported.
CHECKS: tuple[Check, ...] = (
    check_property_names,
    check_unused_properties,
    check_placeholders,
    check_auth_exclusive,
    check_oauth2_flow,
    *TOKEN_AUTH_CHECKS,
    *CONTACT_LOOKUP_CHECKS,
    check_urls,
    check_bodies,
    check_request_shapes,
    check_request_builds,
    check_response_maps,
    check_response_rules,
    check_find,
    check_send_plans,
    check_list_patterns,
    check_webhook_events,
    check_also,
    check_webhook_header_names,
    check_webhook_constraints,
    check_repeated,
    check_optional_keys,
    check_nested_each,
    check_webhook_auth,
    *FILTER_CHECKS,
    *ENCODING_CHECKS,
    *EACH_CHECKS,
    check_webhook_answers,
    *CORRELATION_CHECKS,
    *EVENT_VALUE_CHECKS,
    *THROUGHPUT_CHECKS,
    *MEDIA_CHECKS,
    *HANDSHAKE_CHECKS,
)
