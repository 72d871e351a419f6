"""Loading and validating definitions (docs/format.md, "Checking a file").

Three steps, each reporting every problem it finds: read the input into plain, bounded JSON
(:mod:`._document`), check its structure against the schema (:mod:`._schema`) and its size
(:mod:`._limits`), then run the semantic checks (:mod:`._checks`) on every part intact enough to
check. A definition without errors becomes the typed, immutable :class:`Definition`; its warnings
travel with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from ._checks import CHECKS, check_unused_properties, semantic_problems
from ._document import UNREADABLE, read_document
from ._errors import DefinitionError, Problem
from ._limits import limit_problems
from ._model import (
    Auth,
    BasicAuth,
    BearerAuth,
    ConditionTest,
    ContactLookup,
    Definition,
    EventType,
    FindRule,
    Handshake,
    HandshakeDigest,
    HeaderAuth,
    JwtAuth,
    MediaAuth,
    MediaResolve,
    MediaRules,
    OAuth2Config,
    Property,
    Rate,
    RequestTemplate,
    ResponseCondition,
    ResponseError,
    ResponseRules,
    Split,
    StepCondition,
    ThroughputDefaults,
    TokenAuth,
    WebhookAnswer,
    WebhookAuth,
    WebhookModel,
    freeze,
)
from ._pointer import tokens
from ._schema import structure_problems
from ._variants import combinations, placed, variant_problems

__all__ = ["check_definition", "load_definition"]

_FORM = "application/x-www-form-urlencoded"


def check_definition(data: bytes | str | Mapping[str, Any]) -> tuple[Problem, ...]:
    """Every error and warning in ``data`` (JSON text, UTF-8 bytes or parsed JSON); never raises."""
    return _check(data)[1]


def load_definition(data: bytes | str | Mapping[str, Any]) -> Definition:
    """The typed definition in ``data``.

    Raises :class:`DefinitionError` listing every error and warning when there is any error; on
    success the warnings are in ``Definition.warnings``. Nothing else is ever raised.
    """
    document, problems = _check(data)
    if document is None or any(p.severity == "error" for p in problems):
        raise DefinitionError(problems)
    return _definition(document, problems)


def _check(data: object) -> tuple[dict[str, Any] | None, tuple[Problem, ...]]:
    try:
        value, problems = read_document(data)
        if value is UNREADABLE:
            return None, tuple(problems)
        if not isinstance(value, dict):
            message = f"a definition must be a JSON object, not {_kind(value)}"
            return None, (*problems, Problem(pointer="", message=message))
        document: dict[str, Any] = value
        problems.extend(structure_problems(document))
        too_large = limit_problems(document)
        # Past a bound the semantic checks are skipped: the definition cannot load anyway, and
        # some of them (a "did you mean" per unknown placeholder) grow with the product of sizes.
        problems.extend(too_large or semantic_problems(document))
        if not too_large:
            problems.extend(_variant_problems(document, problems))
    except RecursionError:  # input nested past what the parser can follow
        return None, (Problem(pointer="", message="the definition is nested too deeply"),)
    return document, _ordered(problems)


def _variant_problems(document: dict[str, Any], known: list[Problem]) -> list[Problem]:
    """(ext) docs/format.md, "Variants": ``variants`` itself, then every combination of choices
    checked as the whole definition it makes; a problem the file already has is not repeated."""
    own = variant_problems(document)
    broken = any(
        p.severity == "error" and p.pointer.startswith(("/variants", "/properties")) for p in known
    )
    if own or broken or "variants" not in document:
        return own  # no variants, or which combinations there are is unknown
    seen = {(p.pointer, p.message) for p in known}
    found: list[Problem] = []
    done: set[tuple[tuple[str, str], ...]] = set()
    # Fewer overlays first: a problem one overlay makes is reported for it alone, not again for
    # every combination that includes it.
    for _, applied, merged in sorted(combinations(document), key=lambda c: len(c[1])):
        if not applied or applied in done:
            continue  # the file as written (checked above), or a document already checked
        done.add(applied)
        problems = structure_problems(merged)
        too_large = limit_problems(merged)
        checks = [check for check in CHECKS if check is not check_unused_properties]
        problems.extend(too_large or [p for check in checks for p in check(merged)])
        for problem in problems:
            if (problem.pointer, problem.message) not in seen:
                seen.add((problem.pointer, problem.message))
                found.append(placed(problem, applied, document["variants"]))
    return found


def _ordered(problems: list[Problem]) -> tuple[Problem, ...]:
    """Problems in document order of their pointers, each once."""

    def key(problem: Problem) -> tuple[tuple[int, int | str], ...]:
        return tuple(
            (0, int(t)) if t.isascii() and t.isdigit() else (1, t) for t in tokens(problem.pointer)
        )

    unique = list(dict.fromkeys(problems))
    return tuple(sorted(unique, key=key))


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    return "a number"


# -- building the typed definition (the document is known to be valid here) -----------------------


def _definition(doc: dict[str, Any], problems: tuple[Problem, ...]) -> Definition:
    base = _one_definition(doc, problems)
    if "variants" not in doc:
        return base
    # (ext) docs/format.md, "Variants": every combination is built now, never per send.
    built: dict[tuple[tuple[str, str], ...], Definition] = {}
    variants: dict[tuple[str, ...], Definition] = {}
    for values, applied, merged in combinations(doc):
        if applied:
            if applied not in built:
                built[applied] = _one_definition(merged, problems)
            variants[values] = built[applied]
    by_name = {p.name: p for p in base.properties}
    return replace(
        base,
        choosers=tuple(by_name[name] for name in doc["variants"]),
        variants=MappingProxyType(variants),
    )


def _one_definition(doc: dict[str, Any], problems: tuple[Problem, ...]) -> Definition:
    api = doc["API"]
    return Definition(
        id=doc["id"],
        name=doc["name"],
        logo=doc.get("logo"),
        class_=doc["class"],
        properties=tuple(_property(item) for item in doc.get("properties", ())),
        auth=_auth(doc["auth"]) if "auth" in doc else None,
        oauth2=_oauth2(doc["OAuth2"]) if "OAuth2" in doc else None,
        send_message=_request("/API/SendMessage", api["SendMessage"]),
        send_file=_optional_request(api, "SendFile"),
        webhooks=tuple(_webhook(i, model) for i, model in enumerate(doc.get("Webhook", ()))),
        subscribe=_requests("/Subscribe", doc.get("Subscribe")),
        unsubscribe=_requests("/Unsubscribe", doc.get("Unsubscribe")),
        webhook_auth=_webhook_auth(doc["WebhookAuth"]) if "WebhookAuth" in doc else None,
        number_format=doc.get("number_format", "as_given"),
        warnings=tuple(p for p in problems if p.severity == "warning"),
        source=freeze(doc),
        answer_matched=_answer(doc.get("WebhookAnswer", {}).get("matched")),
        answer_unmatched=_answer(doc.get("WebhookAnswer", {}).get("unmatched")),
        throughput=_throughput(doc.get("Throughput", {})),
        media=_media(doc.get("Media", {})),
        addresses=doc.get("addresses", "phone"),
        handshakes=tuple(_handshake(i, item) for i, item in enumerate(doc.get("Handshake", ()))),
        send_typing=_optional_request(api, "SendTyping"),  # (ext) "Conversation signals"
        mark_read=_optional_request(api, "MarkRead"),
        lookup_contact=_contact_lookup(api.get("LookupContact")),  # (ext) "Contact names"
    )


def _contact_lookup(value: dict[str, Any] | None) -> ContactLookup | None:
    if value is None:
        return None
    names = value["contact_name"]
    request = {k: v for k, v in value.items() if k != "contact_name"}
    return ContactLookup(
        request=_request("/API/LookupContact", request),
        names=(names,) if isinstance(names, str) else tuple(names),
    )


def _optional_request(api: dict[str, Any], key: str) -> RequestTemplate | None:
    request = api.get(key)
    return _request(f"/API/{key}", request) if request is not None else None


def _throughput(value: dict[str, Any]) -> ThroughputDefaults:
    """(ext) docs/format.md, "Throughput"; a rate left out is None (the definition states none)."""
    return ThroughputDefaults(
        per_number=_rate(value.get("per_number")),
        per_installation=_rate(value.get("per_installation")),
    )


def _rate(value: dict[str, Any] | None) -> Rate | None:
    if value is None:
        return None
    per_second = float(value["per_second"])
    # the default burst: one second's worth, at least one send (docs/format.md, "Throughput")
    burst = int(value.get("burst", max(1, math.ceil(per_second))))  # JSON may write 2 as 2.0
    return Rate(per_second=per_second, unit=value.get("unit", "messages"), burst=burst)


def _media(value: dict[str, Any]) -> MediaRules:
    """(ext) docs/format.md, "Media"; hosts and types in lower case, as they are compared."""
    hosts = value.get("hosts")
    types = value.get("content_types")
    return MediaRules(
        auth=_media_auth(value.get("auth", "none")),
        hosts=None if hosts is None else tuple(h.lower() for h in hosts),
        max_item_bytes=value.get("max_item_bytes"),
        max_message_bytes=value.get("max_message_bytes"),
        content_types=None if types is None else tuple(t.strip().lower() for t in types),
        resolve=_media_resolve(value.get("resolve")),
    )


def _media_resolve(value: dict[str, Any] | None) -> MediaResolve | None:
    """(ext) docs/format.md, "Media given as an id": a request only when it names a URL."""
    if value is None:
        return None
    request = None
    if "request_url" in value:
        keys = {k: v for k, v in value.items() if k != "download"}
        request = _request("/Media/resolve", keys)
    return MediaResolve(request=request, download=value["download"])


def _media_auth(auth: str | dict[str, Any]) -> MediaAuth:
    if auth == "none":
        return "none"
    if auth == "api":
        return "api"
    assert isinstance(auth, dict)
    loaded = _auth(auth)
    # the schema takes Basic, Bearer and Header only
    assert not isinstance(loaded, JwtAuth | TokenAuth)
    return loaded


def _property(item: str | dict[str, Any]) -> Property:
    if isinstance(item, str):
        return Property(name=item)  # the seed's form: secret and required
    options = tuple(item.get("options", ()))  # (ext) a choice is never a secret ("Variants")
    # (ext) required only for some choices ("Variants"): required_when stands for `required`
    when = item.get("required_when", {})
    return Property(
        name=item["name"],
        secret=item.get("secret", not options),
        required=item.get("required", not when),
        description=item.get("description"),
        default=item.get("default", options[0] if options else None),
        options=options,
        required_when=MappingProxyType({name: tuple(wanted) for name, wanted in when.items()}),
    )


def _auth(auth: dict[str, Any]) -> Auth:
    kind = auth["type"]
    if kind == "Basic":
        return BasicAuth(username=auth["username"], password=auth["password"])
    if kind == "Bearer":
        return BearerAuth(token=auth["token"])
    if kind == "Header":
        return HeaderAuth(headers=MappingProxyType(dict(auth["headers"])))
    if kind == "Token":  # (ext) docs/format.md, "Tokens from a request"
        use = auth["use"]
        return TokenAuth(
            request=_request("/auth/request", auth["request"]),
            ttl_s=auth.get("ttl_s"),
            headers=MappingProxyType(dict(use.get("headers", {}))),
            query=MappingProxyType(dict(use.get("query", {}))),
        )
    return JwtAuth(
        algorithm=auth["algorithm"],
        key=auth["key"],
        claims=freeze(auth.get("claims", {})),
        ttl_s=auth.get("ttl_s", 900),
    )


def _oauth2(oauth2: dict[str, Any]) -> OAuth2Config:
    return OAuth2Config(
        client_id=oauth2["client_id"],
        client_secret=oauth2["client_secret"],
        flow_type=oauth2.get("flow_type", {}).get("default", "0"),
        authorization_endpoint=oauth2.get("authorization_endpoint"),
        authorization_parameters=oauth2.get("authorization_parameters", {}).get("default", ""),
        token_endpoint=oauth2["token_endpoint"],
        token_content_type=oauth2.get("token_parameters", {}).get("content_type", _FORM),
        request_auth=oauth2.get("request_auth", "Bearer"),
    )


def _request(at: str, request: dict[str, Any]) -> RequestTemplate:
    split = request.get("split")
    then = request.get("then")
    return RequestTemplate(
        pointer=at,
        method=request["request_method"],
        url=request["request_url"],
        content_type=request.get("request_content_type", "application/json"),
        parameters=freeze(request.get("request_parameters")),
        headers=MappingProxyType(dict(request.get("request_headers", {}))),
        response_map=freeze(request.get("response_map")),
        response_rules=_response_rules(request.get("response_rules")),
        query=freeze(request.get("request_query")),
        parameters_in=request.get("request_parameters_in"),
        omit_empty=request.get("request_omit_empty", False),
        find=_find(request.get("find")),
        only_if=_only_if(request.get("only_if")),
        # (ext) docs/format.md, "Several requests per send"
        split=(
            None
            if split is None
            else Split(max_length=split.get("max_length"), max_segments=split.get("max_segments"))
        ),
        for_each=request.get("for_each"),
        then=_request(f"{at}/then", then) if then is not None else None,
        provider_deduplicates=request.get("provider_deduplicates", False),
        build=MappingProxyType(dict(request.get("build", {}))),
    )


def _find(value: dict[str, Any] | list[dict[str, Any]] | None) -> tuple[FindRule, ...]:
    """(ext) docs/format.md, "Look up before create"; one search or a list of them."""
    rules = [] if value is None else [value] if isinstance(value, dict) else value
    return tuple(
        FindRule(
            in_=rule.get("in", ""),
            where=tuple(rule["where"].items()),
            capture=tuple(rule["capture"].items()),
        )
        for rule in rules
    )


def _only_if(value: dict[str, str] | None) -> StepCondition | None:
    if value is None:
        return None
    if "present" in value:
        return StepCondition(name=value["present"], present=True)
    return StepCondition(name=value["absent"], present=False)


_TESTS: tuple[ConditionTest, ...] = ("one_of", "not", "present", "absent")


def _condition(condition: dict[str, Any]) -> ResponseCondition:
    test = next(t for t in _TESTS if t in condition)
    values = condition[test] if test in ("one_of", "not") else ()
    return ResponseCondition(
        pointer=condition.get("pointer"),
        capture=condition.get("capture"),
        test=test,
        values=tuple(values),
    )


def _response_rules(rules: dict[str, Any] | None) -> ResponseRules | None:
    """(ext) docs/format.md, "response_rules"; ``when`` may be one condition or a list."""
    if rules is None:
        return None
    errors = []
    for entry in rules.get("errors", ()):
        when = entry.get("when", ())
        when = [when] if isinstance(when, dict) else when
        errors.append(
            ResponseError(
                status=tuple(entry.get("status", ())),
                when=tuple(_condition(c) for c in when),
                outcome=entry["outcome"],
                retry_after=entry.get("retry_after"),
            )
        )
    return ResponseRules(
        require=tuple(_condition(c) for c in rules.get("require", ())), errors=tuple(errors)
    )


def _requests(
    at: str, value: dict[str, Any] | list[dict[str, Any]] | None
) -> tuple[RequestTemplate, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return (_request(at, value),)
    return tuple(_request(f"{at}/{i}", request) for i, request in enumerate(value))


def _webhook(index: int, model: dict[str, Any]) -> WebhookModel:
    return WebhookModel(
        pointer=f"/Webhook/{index}",
        index=index,
        event_key=model["event_key"],
        event_type=EventType(model["event_type"]),
        method=model["request_method"],
        parameters=freeze(model["request_parameters"]),
        each=model.get("each"),
        enclosing=MappingProxyType(
            {at: freeze(pattern) for at, pattern in model.get("enclosing", {}).items()}
        ),
        absent=tuple(model.get("absent") or ()),
        headers=MappingProxyType(dict(model.get("request_headers", {}))),
        decode=MappingProxyType(dict(model.get("decode", {}))),
        answer=_answer(model.get("answer")),
        build=MappingProxyType(dict(model.get("build", {}))),
        patterns=MappingProxyType(dict(model.get("patterns", {}))),
        keep=tuple(model.get("keep", ())),
        repeated=MappingProxyType(dict(model.get("repeated", {}))),
        also=tuple(EventType(t) for t in model.get("also", ())),
    )


def _handshake(index: int, item: dict[str, Any]) -> Handshake:
    """(ext) docs/format.md, "Verification handshakes"."""
    require: dict[str, str | HandshakeDigest] = {}
    for name, wanted in item.get("require", {}).items():
        if isinstance(wanted, str):
            require[name] = wanted
        else:
            sha1 = "sha1" in wanted
            require[name] = HandshakeDigest(
                algorithm="sha1" if sha1 else "sha256",
                values=tuple(wanted["sha1" if sha1 else "sha256"]),
                sorted=bool(wanted.get("sorted", False)),
            )
    return Handshake(
        pointer=f"/Handshake/{index}",
        method=item["request_method"],
        parameters=freeze(item.get("request_parameters", {})),
        headers=MappingProxyType(dict(item.get("request_headers", {}))),
        require=MappingProxyType(require),
        answer=_answer(item.get("answer")) or WebhookAnswer(),
        signed=bool(item.get("signed", True)),
    )


def _answer(answer: dict[str, Any] | None) -> WebhookAnswer | None:
    """(ext) docs/format.md, "Answers"; a key left out keeps the default answer's value."""
    if answer is None:
        return None
    default = WebhookAnswer()
    return WebhookAnswer(
        status=answer.get("status", default.status),
        content_type=answer.get("content_type", default.content_type),
        body=answer.get("body", default.body),
    )


def _webhook_auth(webhook_auth: dict[str, Any]) -> WebhookAuth:
    options = {key: freeze(value) for key, value in webhook_auth.items() if key != "type"}
    return WebhookAuth(type=webhook_auth["type"], options=MappingProxyType(options))
