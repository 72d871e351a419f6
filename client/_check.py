"""``msgbridge check``: the integration author's linter. No server needed. Its arguments are
``_check_cli``'s, which imports this module (and the engine) only when the command runs.

``msgbridge check FILE...`` prints every problem as ``FILE:/json/pointer: message`` (warnings as
``FILE:/pointer: warning: message``). ``--render`` shows the exact request a definition makes
(secrets masked); ``--match`` shows which webhook model a body matches, the events it gives and
what the live webhook endpoint would answer and keep; ``--response`` shows what a provider's answer
to a send makes of it: accepted with the provider's id, or the gRPC error the caller would get.
Exit codes: 0 no errors, 1 errors (or a payload nothing matched, or a send the answer fails), 2 a
file is unreadable or not JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from server.engine import (
    Definition,
    DefinitionError,
    HandshakeMatch,
    InboundEvent,
    JwtAuth,
    MatchResult,
    Problem,
    RenderedRequest,
    RenderError,
    RequestTemplate,
    TokenAuth,
    TooManyRequests,
    Value,
    WebhookParseError,
    WebhookRequest,
    check_definition,
    choose_answer,
    load_definition,
    match_handshake,
    match_webhook,
    media_kinds,
    only_if_holds,
    plan_send,
    render_request,
)

if TYPE_CHECKING:
    from server.outbound import ProviderResponse

__all__ = ["check"]

OK, ERRORS, UNREADABLE = 0, 1, 2

#: The requests whose answer --response judges: a send's, or (ext) a signal's.
_JUDGED = ("SendMessage", "SendFile", "SendTyping", "MarkRead")
# Stands in for the OAuth2 access token or signed JWT that the gateway would obtain; masked anyway.
_TOKEN_STAND_IN = "access-token"  # noqa: S105 - not a secret: a stand-in, masked on output


def check(args: argparse.Namespace) -> int:
    """``msgbridge check``'s handler (its arguments: ``_check_cli``)."""
    if args.match is None and args.response is None and args.header:
        return _usage_error("--header goes with --match or --response")
    if args.response is None and (args.answer is not None or args.status is not None):
        return _usage_error("--answer and --status go with --response")
    if args.render is not None:
        return _usage(args, "--render", needs="--vars", extra="--webhook") or _render(args)
    if args.match is not None:
        return _usage(args, "--match", needs="--webhook", extra="--vars") or _match(args)
    if args.response is not None:
        return _usage(args, "--response", needs="--answer", extra="--webhook") or _response(args)
    if not args.files:
        return _usage_error("give at least one FILE, or --render / --match / --response FILE")
    if args.vars is not None or args.webhook is not None:
        return _usage_error("--vars goes with --render, --webhook with --match")
    return _lint(args.files, as_json=args.json)


def _usage(args: argparse.Namespace, mode: str, *, needs: str, extra: str) -> int:
    if getattr(args, needs[2:]) is None:
        return _usage_error(f"{mode} needs {needs}")
    if getattr(args, extra[2:]) is not None:
        return _usage_error(f"{extra} does not go with {mode}")
    if args.files:
        return _usage_error(f"{mode} checks one FILE; do not list others")
    return OK


def _usage_error(message: str) -> int:
    print(f"msgbridge check: error: {message}", file=sys.stderr)
    return UNREADABLE


# -- reading files ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Finding:
    file: str
    pointer: str
    severity: str
    message: str

    def line(self) -> str:
        where = f"{self.file}:{self.pointer}" if self.pointer else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"

    def as_json(self) -> dict[str, str]:
        return {
            "file": self.file,
            "pointer": self.pointer,
            "severity": self.severity,
            "message": self.message,
        }


def _findings(file: str, problems: Iterable[Problem]) -> list[_Finding]:
    return [
        _Finding(file=file, pointer=p.pointer, severity=p.severity, message=p.message)
        for p in problems
    ]


def _read(file: str) -> bytes | _Finding:
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return _Finding(file=file, pointer="", severity="error", message=f"cannot read: {reason}")


def _is_json(data: bytes) -> bool:
    def refuse(name: str) -> object:
        raise ValueError(name)

    try:
        json.loads(data.decode("utf-8-sig"), parse_constant=refuse)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


def _read_definition(file: str) -> tuple[int, Definition | None, list[_Finding]]:
    """(exit code, definition, findings): the definition when it loads, else what is wrong."""
    data = _read(file)
    if isinstance(data, _Finding):
        return UNREADABLE, None, [data]
    try:
        definition = load_definition(data)
    except DefinitionError as exc:
        status = ERRORS if _is_json(data) else UNREADABLE
        return status, None, _findings(file, exc.problems)
    return OK, definition, _findings(file, definition.warnings)


def _read_json(file: str) -> tuple[object, _Finding | None]:
    data = _read(file)
    if isinstance(data, _Finding):
        return None, data
    if not _is_json(data):
        return None, _Finding(file=file, pointer="", severity="error", message="is not valid JSON")
    return json.loads(data.decode("utf-8-sig")), None


# -- msgbridge check FILE... -----------------------------------------------------------------------


def _is_json_schema(data: bytes) -> bool:
    """True for a JSON Schema document (its ``$schema`` names a json-schema.org meta-schema)."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except ValueError:
        return False
    meta = document.get("$schema") if isinstance(document, dict) else None
    return isinstance(meta, str) and meta.startswith(
        ("https://json-schema.org/", "http://json-schema.org/")
    )


def _lint(files: Sequence[str], *, as_json: bool) -> int:
    status = OK
    everything: list[_Finding] = []
    for file in files:
        data = _read(file)
        if isinstance(data, _Finding):
            findings, file_status = [data], UNREADABLE
        elif _is_json_schema(data):
            # integrations/schema.json sits beside the definitions it describes; a shell glob
            # over the folder takes it too.
            if not as_json:
                print(f"{file}: skipped (a JSON Schema, not a definition)", file=sys.stderr)
            continue
        else:
            findings = _findings(file, check_definition(data))
            has_errors = any(f.severity == "error" for f in findings)
            file_status = (ERRORS if _is_json(data) else UNREADABLE) if has_errors else OK
        status = max(status, file_status)
        everything.extend(findings)
        if not as_json:
            for finding in findings:
                print(finding.line())
            print(_summary(file, findings), file=sys.stderr)
    if as_json:
        _print_json_lines(f.as_json() for f in everything)
    return status


def _summary(file: str, findings: Sequence[_Finding]) -> str:
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    if not findings:
        return f"{file}: ok"
    return f"{file}: {_count(errors, 'error')}, {_count(warnings, 'warning')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_json(value: object) -> None:
    """One result: one JSON object on one line (--json is JSON Lines, as every command's)."""
    print(json.dumps(value, ensure_ascii=False))


def _print_json_lines(values: Iterable[object]) -> None:
    """A list: a JSON object per line, nothing when it is empty."""
    for value in values:
        _print_json(value)


def _report(findings: Sequence[_Finding], *, as_json: bool) -> None:
    """Problems of a definition that --render or --match could not use."""
    if as_json:
        _print_json_lines(f.as_json() for f in findings)
    else:
        for finding in findings:
            print(finding.line())


def _warn(findings: Sequence[_Finding], *, as_json: bool) -> None:
    if not as_json:
        for finding in findings:
            print(finding.line(), file=sys.stderr)


# -- msgbridge check --render FILE --vars VARS -----------------------------------------------------


def _render(args: argparse.Namespace) -> int:
    status, definition, findings = _read_definition(args.render)
    if definition is None:
        _report(findings, as_json=args.json)
        return status
    _warn(findings, as_json=args.json)
    variables = _read_variables(args.vars, as_json=args.json)
    if variables is None:
        return UNREADABLE
    # (ext) the variant the --vars' property values choose (docs/format.md, "Variants")
    definition = definition.choose({k: v for k, v in variables.items() if isinstance(v, str)})
    if args.request == "SendFile":
        variables = _with_media_kinds(variables)
    elif args.request == "SendMessage" and "reply_count" not in variables:
        # (ext) as the service counts a call's quick replies ("Replies, templates and reply-to")
        replies = variables.get("reply_ids")
        count = len(replies) if isinstance(replies, tuple) else 0
        variables = {**variables, "reply_count": str(count)}
    templates = _templates_or_report(definition, args.request, args.render, as_json=args.json)
    if not templates:
        return ERRORS
    # The token request itself carries no token (docs/format.md, "Tokens from a request").
    needs_token = args.request != "Token" and (
        definition.oauth2 is not None or isinstance(definition.auth, JwtAuth | TokenAuth)
    )
    rendered: list[tuple[RequestTemplate, RenderedRequest]] = []
    steps = _steps(templates, variables, args.request)
    if isinstance(steps, str):
        failure = _Finding(file=args.render, pointer="", severity="error", message=steps)
        _report([failure], as_json=args.json)
        return ERRORS
    for template, values in steps:
        try:
            request = render_request(
                definition,
                template,
                values,
                bearer_token=_TOKEN_STAND_IN if needs_token else None,
                masked=True,
                default_region=args.region,
            )
        except RenderError as exc:
            message = f"cannot render {template.pointer}: {exc}"
            failure = _Finding(
                file=args.render, pointer=exc.pointer, severity="error", message=message
            )
            _report([failure], as_json=args.json)
            return ERRORS
        rendered.append((template, request))
    if args.json:
        _print_json({"file": args.render, "requests": [_request_json(t, r) for t, r in rendered]})
    else:
        print("\n\n".join(_request_text(request) for _, request in rendered))
    return OK


def _with_media_kinds(variables: Mapping[str, Value]) -> Mapping[str, Value]:
    """(ext) A SendFile's ``$media_kinds$`` and ``$media_kind$`` as the service derives them
    (docs/format.md, "Media kinds"), unless --vars gives ``media_kinds``."""
    if "media_kinds" in variables:
        return variables
    urls = variables.get("media_urls")
    content = variables.get("content")
    if not isinstance(urls, tuple):
        urls = (content,) if isinstance(content, str) else ()
    media_type, given = variables.get("media_type"), variables.get("media_kind")
    kinds = media_kinds(
        urls,
        media_type if isinstance(media_type, str) else "",
        given if isinstance(given, str) else "",
    )
    return {**variables, "media_kinds": kinds, "media_kind": kinds[0]} if kinds else variables


def _read_variables(file: str, *, as_json: bool) -> Mapping[str, Value] | None:
    """The variables of a --vars file, or None once what is wrong with it is reported."""
    raw, unreadable = _read_json(file)
    if unreadable is not None:
        _report([unreadable], as_json=as_json)
        return None
    variables = _variables(raw)
    if isinstance(variables, str):
        _report(
            [_Finding(file=file, pointer="", severity="error", message=variables)], as_json=as_json
        )
        return None
    return variables


def _variables(raw: object) -> Mapping[str, Value] | str:
    """The variables of a --vars file, or why they are not usable."""
    if not isinstance(raw, dict):
        return "must be a JSON object of variable and property name → string or list of strings"
    variables: dict[str, Value] = {}
    for name, value in raw.items():
        if value is None or isinstance(value, str):
            variables[name] = value
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            variables[name] = tuple(value)
        else:
            return f'"{name}" must be a string, a list of strings or null'
    return variables


def _steps(
    templates: tuple[RequestTemplate, ...], variables: Mapping[str, Value], name: str
) -> list[tuple[RequestTemplate, Mapping[str, Value]]] | str:
    """The requests to render: a send's planned requests (docs/format.md, "Several requests per
    send"), or every request of a Subscribe or Unsubscribe list; a str says why not."""
    if name not in ("SendMessage", "SendFile"):  # (ext) a step its only_if skips is not made
        return [(t, variables) for t in templates if only_if_holds(t, variables)]
    try:
        return [(s.template, s.variables) for t in templates for s in plan_send(t, variables)]
    except TooManyRequests as exc:
        return str(exc)


def _templates_or_report(
    definition: Definition, name: str, file: str, *, as_json: bool
) -> tuple[RequestTemplate, ...]:
    """The definition's ``name`` requests; none (and reported, against ``file``) when it has
    no such request."""
    templates = _templates(definition, name)
    if not templates:
        message = f"the definition has no {name} request"
        _report(
            [_Finding(file=file, pointer="", severity="error", message=message)], as_json=as_json
        )
    return templates


def _templates(definition: Definition, name: str) -> tuple[RequestTemplate, ...]:
    if name == "SendMessage":
        return (definition.send_message,)
    if name == "SendFile":
        return (definition.send_file,) if definition.send_file is not None else ()
    if name == "Token":
        auth = definition.auth
        return (auth.request,) if isinstance(auth, TokenAuth) else ()
    if name in ("SendTyping", "MarkRead"):  # (ext) "Conversation signals"
        signal = definition.send_typing if name == "SendTyping" else definition.mark_read
        return (signal,) if signal is not None else ()
    if name == "LookupContact":  # (ext) "Contact names"
        lookup = definition.lookup_contact
        return (lookup.request,) if lookup is not None else ()
    return definition.subscribe if name == "Subscribe" else definition.unsubscribe


def _body_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _request_text(request: RenderedRequest) -> str:
    lines = [f"{request.method} {request.url}"]
    lines.extend(f"{name}: {value}" for name, value in request.headers)
    if request.body is not None:
        text = _body_text(request.body)
        lines.append("")
        lines.append(text if text is not None else request.body.decode("utf-8", "backslashreplace"))
    return "\n".join(lines)


def _request_json(template: RequestTemplate, request: RenderedRequest) -> dict[str, Any]:
    result: dict[str, Any] = {
        "request": template.pointer,
        "method": request.method,
        "url": request.url,
        "headers": [[name, value] for name, value in request.headers],
        "body": None,
    }
    if request.body is not None:
        text = _body_text(request.body)
        if text is None:
            result["body_base64"] = base64.b64encode(request.body).decode("ascii")
        else:
            result["body"] = text
    return result


# -- msgbridge check --match FILE --webhook BODY ---------------------------------------------------


def _match(args: argparse.Namespace) -> int:
    status, definition, findings = _read_definition(args.match)
    if definition is None:
        _report(findings, as_json=args.json)
        return status
    _warn(findings, as_json=args.json)
    body = _read(args.webhook)
    if isinstance(body, _Finding):
        _report([body], as_json=args.json)
        return UNREADABLE
    headers = _headers(args.header)
    if isinstance(headers, str):
        return _usage_error(headers)
    request = _webhook_request(
        body, method=args.method.upper(), content_type=args.content_type, headers=headers
    )
    try:
        handshake = match_handshake(definition, request)
        if handshake is not None:
            if args.json:
                _print_json(_handshake_json(args.match, args.webhook, handshake))
            else:
                print("\n".join(_handshake_lines(definition, handshake)))
            return OK
        result = match_webhook(definition, request)
    except WebhookParseError as exc:
        # The live endpoint answers 400 and keeps nothing (docs/format.md, "Unmatched payloads").
        message = f"cannot be parsed: {exc} (the live endpoint answers 400 and keeps nothing)"
        failure = _Finding(file=args.webhook, pointer="", severity="error", message=message)
        _report([failure], as_json=args.json)
        return UNREADABLE
    if args.json:
        _print_json(_match_json(args.match, args.webhook, definition, result))
    else:
        print("\n".join(_match_lines(definition, result)))
        print("\n".join(_live_lines(definition, result)))
    # Only a payload kept as unmatched is a failure: a body without payloads (an empty batch)
    # gives no event and is answered 2xx like any stored request.
    return ERRORS if result.unmatched else OK


def _handshake_lines(definition: Definition, match: HandshakeMatch) -> list[str]:
    """(ext) What the live endpoint does with a verification handshake (docs/format.md,
    "Verification handshakes"): never an event; checked against an installation's properties,
    which are not known here."""
    handshake = match.handshake
    lines = [f"the body is the verification handshake {handshake.pointer}: it gives no event"]
    lines.extend(f"  {name}: {value}" for name, value in sorted(match.captures.items()))
    if handshake.signed and definition.webhook_auth is not None:
        lines.append("first, the WebhookAuth check (not made here): a failure is answered 401")
    elif definition.webhook_auth is not None:
        lines.append("it is not signed: the WebhookAuth is not checked")
    for name in handshake.require:
        lines.append(
            f"${name}$ must equal what the installation's properties make (not checked here): "
            "else it is answered 403 and kept as unauthenticated"
        )
    answer = handshake.answer
    body = json.dumps(answer.body, ensure_ascii=False) if answer.body else "empty"
    lines.append(
        f"the live endpoint answers {answer.status} ({answer.content_type}, body template "
        f"{body}) and keeps the request with no event"
    )
    return lines


def _handshake_json(file: str, webhook: str, match: HandshakeMatch) -> dict[str, Any]:
    handshake = match.handshake
    return {
        "file": file,
        "webhook": webhook,
        "events": [],
        "unmatched": [],
        "handshake": {
            "pointer": handshake.pointer,
            "captures": dict(match.captures),
            "signed": handshake.signed,
            "require": sorted(handshake.require),
            "answer": {
                "status": handshake.answer.status,
                "content_type": handshake.answer.content_type,
                "body_template": handshake.answer.body,
            },
        },
    }


def _headers(given: list[str]) -> tuple[tuple[str, str], ...] | str:
    """``--header 'Name: value'`` options as pairs, or what is wrong with one."""
    pairs = []
    for text in given:
        name, colon, value = text.partition(":")
        if not colon or not name.strip() or name != name.strip():
            return f"--header {text!r}: write it as 'Name: value'"
        pairs.append((name, value.strip()))
    return tuple(pairs)


def _webhook_request(
    body: bytes,
    *,
    method: str,
    content_type: str | None,
    headers: tuple[tuple[str, str], ...] = (),
) -> WebhookRequest:
    if method == "GET":  # the file holds the query string
        query = body.decode("utf-8", "replace").strip().removeprefix("?")
        pairs = tuple(parse_qsl(query, keep_blank_values=True))
        return WebhookRequest(
            method=method, content_type=content_type, body=b"", query=pairs, headers=headers
        )
    if content_type is None:
        content_type = _sniffed_type(body, otherwise="application/x-www-form-urlencoded")
    return WebhookRequest(method=method, content_type=content_type, body=body, headers=headers)


def _payload_name(pointer: str) -> str:
    return f"payload {pointer}" if pointer else "the body"


def _match_lines(definition: Definition, result: MatchResult) -> list[str]:
    lines: list[str] = []
    for event in result.events:
        model = definition.webhooks[event.model]
        lines.append(
            f"{_payload_name(event.payload_pointer)}: {event.type.value} "
            f'(model {model.pointer}, event_key "{event.event_key}")'
        )
        lines.extend(f"  {name}: {value}" for name, value in _event_fields(event) if value)
    for payload in result.unmatched:
        lines.append(f"{_payload_name(payload.payload_pointer)}: no match: {payload.reason}")
        for miss in payload.near_misses:
            model = definition.webhooks[miss.model]
            if model.pointer in payload.reason:
                continue  # the reason already says why this model failed
            lines.append(
                f'  closest: {model.pointer} (event_key "{miss.event_key}", '
                f"{_count(miss.matched_constraints, 'constraint')} matched): {miss.reason}"
            )
    if not lines:
        lines.append("the body holds no payload")
    return lines


def _live(definition: Definition, result: MatchResult) -> dict[str, Any]:
    """What the live webhook endpoint does with a body that matched as ``result`` once it has
    passed the definition's WebhookAuth check: its answer (docs/format.md, "Answers") and what it
    keeps (docs/format.md, "Unmatched payloads")."""
    answer = choose_answer(definition, result)
    return {
        "status": answer.status,
        "content_type": answer.content_type,
        "body": answer.body,
        "events": len(result.events),
        "kept_unmatched": len(result.unmatched),
        "listed_as_unmatched": bool(result.unmatched),
        "webhook_auth": definition.webhook_auth is not None,
    }


def _live_lines(definition: Definition, result: MatchResult) -> list[str]:
    live = _live(definition, result)
    body = f"body {json.dumps(live['body'], ensure_ascii=False)}" if live["body"] else "empty body"
    lines = [f"the live endpoint answers {live['status']} ({live['content_type']}, {body})"]
    if result.events:
        kept = f"{_count(live['events'], 'event')} (each routed by its number; one no "
        kept += "installation holds is kept as unroutable)"
    else:
        kept = "no event"
    if result.unmatched:
        kept += (
            f"; {_count(live['kept_unmatched'], 'payload')} kept as unmatched: the request is "
            "listed by ListUnmatchedWebhooks and can be replayed once the definition is fixed"
        )
    else:
        kept += "; nothing is kept as unmatched"
    lines.append(f"it stores the request: {kept}")
    if live["webhook_auth"]:
        lines.append(
            "first, the WebhookAuth check (not made here): a request that fails it is answered "
            "401 and gives no event"
        )
    return lines


def _event_fields(event: InboundEvent) -> list[tuple[str, str]]:
    return [
        ("from", event.from_number or ""),
        ("to", event.to_number or ""),
        ("text", event.text or ""),
        ("media", " ".join(event.media_urls)),
        ("messageid", event.provider_message_id or ""),
        ("status", event.status or ""),
        ("error", event.error or ""),
        *((f"fields.{name}", value) for name, value in sorted(event.fields.items())),
    ]


def _match_json(
    file: str, webhook: str, definition: Definition, result: MatchResult
) -> dict[str, Any]:
    return {
        "file": file,
        "webhook": webhook,
        "events": [
            {
                "type": event.type.value,
                "model": definition.webhooks[event.model].pointer,
                "event_key": event.event_key,
                "payload_pointer": event.payload_pointer,
                "from": event.from_number,
                "to": event.to_number,
                "text": event.text,
                "media_urls": list(event.media_urls),
                "provider_message_id": event.provider_message_id,
                "status": event.status,
                "error": event.error,
                "captures": {
                    name: value if isinstance(value, str) else list(value)
                    for name, value in event.captures.items()
                },
                "fields": dict(event.fields),
            }
            for event in result.events
        ],
        "unmatched": [
            {
                "payload_pointer": payload.payload_pointer,
                "reason": payload.reason,
                "near_misses": [
                    {
                        "model": definition.webhooks[miss.model].pointer,
                        "event_key": miss.event_key,
                        "reason": miss.reason,
                        "matched_constraints": miss.matched_constraints,
                    }
                    for miss in payload.near_misses
                ],
            }
            for payload in result.unmatched
        ],
        "live": _live(definition, result),
    }


# -- msgbridge check --response FILE --answer BODY -------------------------------------------------


def _response(args: argparse.Namespace) -> int:
    # The gateway's own modules, imported here: linting a file needs only the engine.
    from multidict import CIMultiDict

    from server.core import judge_send_answer, nothing_sent
    from server.oauth import installation_secrets
    from server.outbound import ProviderResponse
    from server.security.secrets import SecretMask

    status, definition, findings = _read_definition(args.response)
    if definition is None:
        _report(findings, as_json=args.json)
        return status
    _warn(findings, as_json=args.json)
    if args.request not in _JUDGED:
        return _usage_error(
            "--response judges a SendMessage, SendFile, SendTyping or MarkRead answer"
        )
    variables: Mapping[str, Value] = {}
    if args.vars is not None:
        read = _read_variables(args.vars, as_json=args.json)
        if read is None:
            return UNREADABLE
        variables = read
    # (ext) the variant the --vars' property values choose (docs/format.md, "Variants")
    definition = definition.choose({k: v for k, v in variables.items() if isinstance(v, str)})
    templates = _templates_or_report(definition, args.request, args.response, as_json=args.json)
    if not templates:
        return ERRORS
    body = _read(args.answer)
    if isinstance(body, _Finding):
        _report([body], as_json=args.json)
        return UNREADABLE
    given = _headers(args.header)
    if isinstance(given, str):
        return _usage_error(given)
    http_status = 200 if args.status is None else args.status
    if not 100 <= http_status <= 599:
        return _usage_error(f"--status {http_status}: an HTTP status is 100 to 599")
    headers: CIMultiDict[str] = CIMultiDict(given)
    if args.content_type is not None:
        headers["Content-Type"] = args.content_type
    elif "Content-Type" not in headers and body.strip():
        headers["Content-Type"] = _sniffed_type(body, otherwise="text/plain")
    answer = ProviderResponse(status=http_status, headers=headers, body=body, elapsed_s=0.0)
    template = templates[0]
    verdict = judge_send_answer(
        template,
        answer,
        integration=definition.id,
        secrets=lambda: (
            installation_secrets(definition, variables) if variables else SecretMask.of(())
        ),
    )
    needs_token = definition.oauth2 is not None or isinstance(definition.auth, JwtAuth | TokenAuth)
    notes = _live_send_notes(answer, needs_token=needs_token)
    result: dict[str, Any] = {
        "file": args.response,
        "request": template.pointer,
        "status": http_status,
        "accepted": not isinstance(verdict, Exception),
        "notes": notes,
    }
    if isinstance(verdict, Exception):
        result["error"] = {
            "code": verdict.grpc_code.name,
            "reason": verdict.reason,
            "message": verdict.message,
            "metadata": dict(verdict.metadata),
            "retry_after_s": verdict.retry_after_s,
            "caller_may_retry": nothing_sent(verdict),
        }
    else:
        result["provider_message_id"] = verdict.provider_message_id
    if args.json:
        _print_json(result)
    else:
        print("\n".join(_response_lines(result)))
    return OK if result["accepted"] else ERRORS


def _sniffed_type(body: bytes, *, otherwise: str) -> str:
    """The content type a body's first character suggests: JSON, XML, else ``otherwise``."""
    start = body.lstrip()[:1]
    if start in (b"{", b"["):
        return "application/json"
    return "application/xml" if start == b"<" else otherwise


def _live_send_notes(answer: ProviderResponse, *, needs_token: bool) -> list[str]:
    """What the live send path does before it settles on this answer's outcome
    (the send path in docs/architecture.md; docs/format.md, "response_rules")."""
    from server.core import retry_after

    notes = []
    if answer.status in (429, 503) and retry_after(answer) is not None:
        notes.append(
            "live, the send path first waits the answer's Retry-After and calls again while "
            "its attempts (--send-max-attempts) and the deadline allow; this is the outcome "
            "when the provider keeps answering so"
        )
    if answer.status == 401 and needs_token:
        notes.append(
            "live, a 401 to a call with an OAuth2, JWT or Token auth's token renews the token "
            "once and calls "
            "again; this is the outcome when the provider answers 401 again"
        )
    return notes


def _response_lines(result: Mapping[str, Any]) -> list[str]:
    status = result["status"]
    if result["accepted"]:
        provider_id = result["provider_message_id"]
        said = (
            f'provider message id "{provider_id}"'
            if provider_id is not None
            else "no provider message id (receipts cannot be matched by it)"
        )
        lines = [f"accepted (HTTP {status}): the message is sent, {said}"]
    else:
        error = result["error"]
        lines = [
            f"fails (HTTP {status}): {error['code']} {error['reason']}",
            f"  {error['message']}",
        ]
        lines.extend(f"  {name}: {value}" for name, value in sorted(error["metadata"].items()))
        if error["retry_after_s"] is not None:
            lines.append(f"  retry after: {error['retry_after_s']:g} s")
        lines.append(
            "  the caller may retry: nothing was sent, the idempotency key is released"
            if error["caller_may_retry"]
            else "  the caller may not retry: the failure is the idempotency key's reply"
        )
    lines.extend(f"note: {note}" for note in result["notes"])
    return lines
