"""``msgbridge check``: the integration author's linter. No server needed.

``msgbridge check FILE...`` prints every problem as ``FILE:/json/pointer: message`` (warnings as
``FILE:/pointer: warning: message``). ``--render`` shows the exact request a definition makes
(secrets masked); ``--match`` shows which webhook model a body matches and the events it gives.
Exit codes: 0 no errors, 1 errors (or a body nothing matched), 2 a file is unreadable or not JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from server.engine import (
    Definition,
    DefinitionError,
    InboundEvent,
    JwtAuth,
    MatchResult,
    Problem,
    RenderedRequest,
    RenderError,
    RequestTemplate,
    TooManyRequests,
    Value,
    WebhookParseError,
    WebhookRequest,
    check_definition,
    load_definition,
    match_webhook,
    plan_send,
    render_request,
)

__all__ = ["add_parsers"]

OK, ERRORS, UNREADABLE = 0, 1, 2

_REQUESTS = ("SendMessage", "SendFile", "Subscribe", "Unsubscribe")
# Stands in for the OAuth2 access token or signed JWT that the gateway would obtain; masked anyway.
_TOKEN_STAND_IN = "access-token"  # noqa: S105 - not a secret: a stand-in, masked on output


def add_parsers(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="check integration definitions (no server needed)",
        description="Check integration definition files: every error and warning with its JSON "
        "Pointer. With --render, show the HTTP request a definition makes; with --match, show "
        "what a webhook body gives. Exit status: 0 no errors, 1 errors, 2 a file is unreadable or "
        "not JSON.",
    )
    check.add_argument("files", nargs="*", metavar="FILE", help="definition files to check")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    modes = check.add_mutually_exclusive_group()
    modes.add_argument(
        "--render",
        metavar="FILE",
        help="show the request the definition in FILE makes (with --vars; secrets masked)",
    )
    modes.add_argument(
        "--match",
        metavar="FILE",
        help="match a webhook body (--webhook) against the models of the definition in FILE",
    )
    check.add_argument(
        "--vars",
        metavar="VARS",
        help="for --render: a JSON object of variable and property name → string or list",
    )
    check.add_argument(
        "--request",
        choices=_REQUESTS,
        default="SendMessage",
        help="for --render: which request to show (default SendMessage)",
    )
    check.add_argument(
        "--region",
        metavar="CC",
        help="for --render: default region for national numbers (number_format), e.g. US",
    )
    check.add_argument(
        "--webhook",
        metavar="BODY",
        help="for --match: a file holding the webhook body (for GET: the query string)",
    )
    check.add_argument(
        "--content-type",
        help="for --match: the body's Content-Type (default: JSON when it starts with { or [, "
        "XML when it starts with <, else form)",
    )
    check.add_argument(
        "--method", default="POST", help="for --match: the request method (default POST)"
    )
    check.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="for --match: a request header the webhook carries (repeatable)",
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    if args.match is None and args.header:
        return _usage_error("--header goes with --match")
    if args.render is not None:
        return _usage(args, "--render", needs="--vars", extra="--webhook") or _render(args)
    if args.match is not None:
        return _usage(args, "--match", needs="--webhook", extra="--vars") or _match(args)
    if not args.files:
        return _usage_error("give at least one FILE, or --render FILE / --match FILE")
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
        _print_json([f.as_json() for f in everything])
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
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _report(findings: Sequence[_Finding], *, as_json: bool) -> None:
    """Problems of a definition that --render or --match could not use."""
    if as_json:
        _print_json([f.as_json() for f in findings])
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
    raw, unreadable = _read_json(args.vars)
    if unreadable is not None:
        _report([unreadable], as_json=args.json)
        return UNREADABLE
    variables = _variables(raw)
    if isinstance(variables, str):
        _report(
            [_Finding(file=args.vars, pointer="", severity="error", message=variables)],
            as_json=args.json,
        )
        return UNREADABLE
    # (ext) the variant the --vars' property values choose (docs/format.md, "Variants")
    definition = definition.choose({k: v for k, v in variables.items() if isinstance(v, str)})
    templates = _templates(definition, args.request)
    if not templates:
        message = f"the definition has no {args.request} request"
        _report(
            [_Finding(file=args.render, pointer="", severity="error", message=message)],
            as_json=args.json,
        )
        return ERRORS
    needs_token = definition.oauth2 is not None or isinstance(definition.auth, JwtAuth)
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
    if name not in ("SendMessage", "SendFile"):
        return [(template, variables) for template in templates]
    try:
        return [(s.template, s.variables) for t in templates for s in plan_send(t, variables)]
    except TooManyRequests as exc:
        return str(exc)


def _templates(definition: Definition, name: str) -> tuple[RequestTemplate, ...]:
    if name == "SendMessage":
        return (definition.send_message,)
    if name == "SendFile":
        return (definition.send_file,) if definition.send_file is not None else ()
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
        result = match_webhook(definition, request)
    except WebhookParseError as exc:
        failure = _Finding(
            file=args.webhook, pointer="", severity="error", message=f"cannot be parsed: {exc}"
        )
        _report([failure], as_json=args.json)
        return UNREADABLE
    if args.json:
        _print_json(_match_json(args.match, args.webhook, definition, result))
    else:
        print("\n".join(_match_lines(definition, result)))
    return OK if result.events and not result.unmatched else ERRORS


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
        start = body.lstrip()[:1]
        content_type = (
            "application/json"
            if start in (b"{", b"[")
            else "application/xml"
            if start == b"<"
            else "application/x-www-form-urlencoded"
        )
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
    }
