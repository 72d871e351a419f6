"""The commands that talk to a running service: register, enable, send, events …

Every command takes, after its name, the connection options (``--target``, ``--token``, ``--tls``,
``--ca``, ``--cert``, ``--key``, ``--timeout``) and ``--json``, which prints the protobuf JSON
mapping of the reply as JSON Lines: one object per line, for a single result as for each record
of a listing. A failed call prints the gRPC code's name, the
ErrorInfo reason and message, and each field violation as ``pointer: description`` on stderr and
exits 1; a usage error or an unreadable file exits 2.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from msgbridge.v1 import gateway_pb2

from . import _delivery_arguments as delivery
from . import _human_output as human
from ._arguments import INT32_MAX, INT64_MAX, integer, seconds
from ._client import DEFAULT_TARGET, Client
from ._delivery import SendLimits
from ._errors import MsgbridgeError
from ._follow import DEFAULT_GIVE_UP_AFTER_S, FollowRequest, follow
from ._options import ClientOptions, TLSConfig
from ._rich import reply_argument, template_of

__all__ = ["UsageError", "add_parsers", "connection_parser", "run_command", "show"]

TARGET_ENV = "MSGBRIDGE_TARGET"
TOKEN_ENV = "MSGBRIDGE_TOKEN"  # noqa: S105 - the variable's name, not a token

EXIT_FAILED = 1
EXIT_USAGE = 2

Action = Callable[[Client, argparse.Namespace], int]
_M = TypeVar("_M", bound=Message)


class _UsageError(Exception):
    """A command line the service need not see: exit 2."""


# -- parsing arguments --------------------------------------------------------------------------


def _key_value(kind: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for ``NAME=VALUE`` split at the first ``=`` (the value may hold more)."""

    def parse(text: str) -> tuple[str, str]:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{kind} must be NAME=VALUE, got {text!r}")
        return name, value

    return parse


def _event_type(text: str) -> gateway_pb2.Event.Type.ValueType:
    try:
        return human.EVENT_TYPE_NAMES[text]
    except KeyError:
        names = ", ".join(human.EVENT_TYPE_NAMES)
        raise argparse.ArgumentTypeError(f"unknown event type {text!r} (one of {names})") from None


# Cursors and versions are int64 fields; page sizes int32 (the server caps them lower).
_cursor = integer("a cursor", low=0, high=INT64_MAX)
_version = integer("a version", low=0, high=INT64_MAX)
_page_size = integer("the page size", low=1, high=INT32_MAX)
_limit = integer("the limit", low=1, high=INT32_MAX)
_count32 = integer("the value", low=0, high=INT32_MAX)


def _give_up(text: str) -> float:
    """``--give-up-after``: seconds, or 0 for never."""
    try:
        never = float(text) == 0
    except ValueError:
        never = False
    return 0.0 if never else seconds("the give-up time (or 0, never)")(text)


def _unique(pairs: Sequence[tuple[str, str]] | None, kind: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in pairs or ():
        if name in values:
            raise _UsageError(f"{kind} {name!r} given twice")
        values[name] = value
    return values


def _connection_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--target",
        metavar="HOST:PORT",
        help=f"the gateway (default: ${TARGET_ENV}, else {DEFAULT_TARGET})",
    )
    group.add_argument("--token", help=f"bearer token sent on every call (default: ${TOKEN_ENV})")
    group.add_argument("--tls", action="store_true", help="use TLS (implied by --ca/--cert/--key)")
    group.add_argument("--ca", metavar="FILE", help="PEM root certificates to trust")
    group.add_argument("--cert", metavar="FILE", help="PEM client certificate (mutual TLS)")
    group.add_argument("--key", metavar="FILE", help="PEM client private key (mutual TLS)")
    group.add_argument(
        "--timeout",
        type=seconds("the timeout"),
        default=30.0,
        metavar="SECONDS",
        help="deadline per call (default: 30)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        help="print the protobuf JSON mapping, one JSON object per line (JSON Lines)",
    )
    return parser


def _client_options(args: argparse.Namespace) -> tuple[str, ClientOptions]:
    target = args.target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
    token = args.token or os.environ.get(TOKEN_ENV) or None
    tls = None
    if args.tls or args.ca or args.cert or args.key:
        if bool(args.cert) != bool(args.key):
            raise _UsageError("--cert and --key go together")
        try:
            tls = TLSConfig.from_files(
                root_certificates=args.ca, client_certificate=args.cert, client_private_key=args.key
            )
        except OSError as exc:
            raise _UsageError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    return target, ClientOptions(tls=tls, token=token, timeout=args.timeout)


# -- running a command --------------------------------------------------------------------------


def _command(action: Action) -> Callable[[argparse.Namespace], int]:
    """The handler: connect, run ``action``, and turn a failure into its report and exit code."""

    @functools.wraps(action)
    def handler(args: argparse.Namespace) -> int:
        try:
            target, options = _client_options(args)
            with Client.connect(target, options=options) as client:
                return action(client, args)
        except _UsageError as exc:
            print(f"msgbridge {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except MsgbridgeError as exc:
            for line in human.error_lines(exc):
                print(line, file=sys.stderr)
            return EXIT_FAILED

    return handler


def _to_dict(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True
    )
    return result


def _print_json_line(message: Message) -> None:
    """--json is JSON Lines for every command: one object per line, a single result as much as
    each record of a listing (README, "Five minutes with it")."""
    print(json.dumps(_to_dict(message), ensure_ascii=False), flush=True)


def _print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def _show_list(
    args: argparse.Namespace,
    records: Iterable[_M],
    table: Callable[[Iterable[_M]], Iterable[str]],
) -> int:
    """A listing: a JSON object per line with --json, else the table."""
    if args.json:
        for record in records:
            _print_json_line(record)
    else:
        _print_lines(table(records))
    return 0


def _show(args: argparse.Namespace, message: Message, lines: Callable[[], Iterable[str]]) -> None:
    if args.json:
        _print_json_line(message)
    else:
        _print_lines(lines())


def _without_secrets(installation: gateway_pb2.Installation) -> gateway_pb2.Installation:
    """A copy with any secret property value blanked (the server sends none; this makes sure)."""
    copy = gateway_pb2.Installation()
    copy.CopyFrom(installation)
    for value in copy.properties:
        if value.secret:
            value.value = ""
    return copy


def _show_installation(args: argparse.Namespace, installation: gateway_pb2.Installation) -> int:
    installation = _without_secrets(installation)
    _show(args, installation, lambda: human.installation_lines(installation))
    return 0


# -- the commands -------------------------------------------------------------------------------


def _register(client: Client, args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            definition = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as file:
                definition = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read {args.file}: {exc}") from exc
    reply = client.register_integration(definition, validate_only=args.validate_only)
    _show(args, reply, lambda: human.register_lines(reply))
    return 0


def _integrations(client: Client, args: argparse.Namespace) -> int:
    integrations = client.list_integrations(page_size=args.page_size)
    return _show_list(args, integrations, human.integrations_table)


def _integration(client: Client, args: argparse.Namespace) -> int:
    integration = client.get_integration(args.id, version=args.version)
    _show(args, integration, lambda: human.integration_lines(integration))
    return 0


def _delete_integration(client: Client, args: argparse.Namespace) -> int:
    reply = client.delete_integration(args.id, force=args.force)

    def lines() -> list[str]:
        disabled = reply.disabled_installations
        suffix = f"; {disabled} installation(s) disabled" if disabled else ""
        return [f"Deleted integration {args.id}{suffix}"]

    _show(args, reply, lines)
    return 0


def _enable(client: Client, args: argparse.Namespace) -> int:
    installation = client.enable_integration(
        org_id=args.org,
        integration_id=args.integration,
        properties=_unique(args.property, "property"),
        numbers=_numbers(args, args.number or []),
        default_region=args.region,
        send_limits=delivery.send_limits(args) if delivery.limits_given(args) else None,
    )
    return _show_installation(args, installation)


def _numbers(
    args: argparse.Namespace, numbers: Sequence[gateway_pb2.NumberAssignment]
) -> list[gateway_pb2.NumberAssignment]:
    """The numbers with their ``@RATE`` qualified by ``--rate-unit`` and ``--burst``."""
    try:
        return delivery.with_number_rates(args, numbers)
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc


def _updated_limits(client: Client, args: argparse.Namespace) -> SendLimits | None:
    """The limits an update sets: None (unchanged), none at all (--no-limits), or the current
    ones with those the command line names changed (UpdateInstallation replaces them whole)."""
    if args.no_limits:
        if delivery.limits_given(args):
            raise _UsageError("--no-limits and the limit options exclude each other")
        return SendLimits()
    if not delivery.limits_given(args):
        return None
    current = client.get_installation(args.id).send_limits
    return delivery.send_limits(args, SendLimits.from_proto(current))


def _update_installation(client: Client, args: argparse.Namespace) -> int:
    if args.no_numbers and args.number:
        raise _UsageError("--no-numbers and --number exclude each other")
    given = _numbers(args, args.number or [])  # refuses --rate-unit or --burst without a rate
    numbers = given if args.number or args.no_numbers else None
    properties = _unique(args.property, "property")
    clear = args.clear_property or []
    changes_limits = args.no_limits or delivery.limits_given(args)
    if not (
        properties or clear or numbers is not None or args.region is not None or changes_limits
    ):
        raise _UsageError(
            "nothing to update: give --property, --clear-property, --number, --max-queued, …"
        )
    installation = client.update_installation(
        args.id,
        properties=properties,
        clear_properties=clear,
        numbers=numbers,
        default_region=args.region,
        send_limits=_updated_limits(client, args),
    )
    return _show_installation(args, installation)


def _installations(client: Client, args: argparse.Namespace) -> int:
    installations = (
        _without_secrets(installation)
        for installation in client.list_installations(
            org_id=args.org or "", integration_id=args.integration or "", page_size=args.page_size
        )
    )
    return _show_list(args, installations, human.installations_table)


def _installation(client: Client, args: argparse.Namespace) -> int:
    return _show_installation(args, client.get_installation(args.id))


def _disable(client: Client, args: argparse.Namespace) -> int:
    return _show_installation(args, client.disable_integration(args.id))


def _retry_subscription(client: Client, args: argparse.Namespace) -> int:
    return _show_installation(args, client.retry_subscription(args.id))


def _send(client: Client, args: argparse.Namespace) -> int:
    try:
        template = template_of(args.template, args.language, args.param or ())
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if not args.text and template is None:
        raise _UsageError("--text is required (unless --template is given)")
    reply = client.send_message(
        org_id=args.org,
        from_=args.from_,
        to=args.to,
        text=args.text,
        extension=args.extension,
        domain=args.domain,
        integration_id=args.integration,
        idempotency_key=args.idempotency_key,
        metadata=_unique(args.metadata, "metadata"),
        options=delivery.send_options(args),
        replies=args.reply or (),
        template=template,
        reply_to=args.reply_to,
    )
    _show(args, reply, lambda: [human.send_line(reply)])
    return 0


def _send_file(client: Client, args: argparse.Namespace) -> int:
    urls, media_id, filename = args.url or [""], args.media_id or "", args.filename
    if args.file is not None:  # uploaded first, then sent by its media id (docs/media.md)
        from ._media_cli import upload  # here: _media_cli builds on this module

        filename = filename or os.path.basename(args.file)
        media_id = upload(
            client,
            org_id=args.org,
            path=args.file,
            filename=filename,
            integration_id=args.integration,
        ).media_id
    reply = client.send_file(
        org_id=args.org,
        from_=args.from_,
        to=args.to,
        media_url=urls[0],
        media_urls=urls[1:],
        media_id=media_id,
        text=args.text,
        media_type=args.media_type,
        filename=filename,
        extension=args.extension,
        domain=args.domain,
        integration_id=args.integration,
        idempotency_key=args.idempotency_key,
        metadata=_unique(args.metadata, "metadata"),
        options=delivery.send_options(args),
        reply_to=args.reply_to,
        media_kind=args.media_kind,
    )
    _show(args, reply, lambda: [human.send_line(reply)])
    return 0


def _signal(client: Client, args: argparse.Namespace) -> int:
    """(ext) ``typing`` and ``mark-read``: one call each, made at once."""
    call, head = (
        (client.send_typing, "Typing shown")
        if args.signal == "typing"
        else (client.mark_read, "Marked read")
    )
    reply = call(
        org_id=args.org,
        from_=args.from_,
        to=args.to,
        provider_message_id=args.message_id,
        integration_id=args.integration,
        extension=args.extension,
        domain=args.domain,
    )
    _show(args, reply, lambda: [human.signal_line(head, reply)])
    return 0


def _message(client: Client, args: argparse.Namespace) -> int:
    message = client.get_message(args.id)
    _show(args, message, lambda: human.message_lines(message))
    return 0


def _messages(client: Client, args: argparse.Namespace) -> int:
    since, until = args.since, args.until
    if since is not None and until is not None and since >= until:
        raise _UsageError("--since must be before --until")
    messages = client.list_messages(
        org_id=args.org or "",
        installation_id=args.installation or "",
        states=[state for states in args.state or () for state in states],
        created_after=since,
        created_before=until,
        page_size=args.page_size,
    )
    return _show_list(args, messages, human.messages_table)


def _cancel(client: Client, args: argparse.Namespace) -> int:
    message = client.cancel_message(args.id)
    _show(args, message, lambda: [f"Cancelled {message.message_id}", *human.message_lines(message)])
    return 0


def _print_event(args: argparse.Namespace, event: gateway_pb2.Event) -> None:
    if args.json:
        _print_json_line(event)
    else:
        print(human.event_line(event), flush=True)


def _events(client: Client, args: argparse.Namespace) -> int:
    types = args.type or []
    if not args.follow:
        if args.consumer:
            raise _UsageError("--consumer needs --follow (stored events are listed as they are)")
        # Without --after (or with --earliest): every stored event that matches.
        for event in client.list_events(
            org_id=args.org or "",
            integration_id=args.integration or "",
            types=types,
            after_cursor=args.after or 0,
            page_size=args.page_size,
        ):
            _print_event(args, event)
        return 0
    request = FollowRequest(
        org_id=args.org or "",
        integration_id=args.integration or "",
        types=types,
        after_cursor=args.after,
        earliest=args.earliest,
        consumer=args.consumer or "",
        max_batch=args.page_size,
        give_up_after_s=args.give_up_after,
    )
    return follow(client, request, lambda event: _print_event(args, event))


def _unmatched(client: Client, args: argparse.Namespace) -> int:
    webhooks = client.list_unmatched_webhooks(
        integration_id=args.integration or "", page_size=args.page_size
    )
    return _show_list(args, webhooks, human.unmatched_table)


def _webhooks(client: Client, args: argparse.Namespace) -> int:
    webhooks = client.list_webhooks(
        integration_id=args.integration or "", page_size=args.page_size or min(args.limit, 100)
    )
    return _show_list(args, itertools.islice(webhooks, args.limit), human.webhooks_table)


def _replay(client: Client, args: argparse.Namespace) -> int:
    reply = client.replay_webhook(args.id)

    def lines() -> list[str]:
        if not reply.events:
            return [f"Replayed {args.id}: still no event: {reply.reason or 'no reason given'}"]
        count = len(reply.events)
        return [
            f"Replayed {args.id}: {count} event" + ("" if count == 1 else "s"),
            *(human.event_line(event) for event in reply.events),
        ]

    _show(args, reply, lines)
    return 0


def _optouts(client: Client, args: argparse.Namespace) -> int:
    if args.clear:
        return _clear_opt_out(client, args)
    opt_outs = client.list_opt_outs(
        org_id=args.org or "",
        installation_id=args.installation or "",
        from_=args.from_ or "",
        to=args.to or "",
        page_size=args.page_size,
    )
    if args.json:
        for opt_out in opt_outs:
            _print_json_line(opt_out)
    else:
        _print_lines(human.opt_outs_table(opt_outs))
    return 0


def _clear_opt_out(client: Client, args: argparse.Namespace) -> int:
    """``optouts clear INSTALLATION FROM TO``: an operator's decision that the recipient may be
    sent to again (docs/delivery.md, "Opt-outs")."""
    if len(args.clear) != 4 or args.clear[0] != "clear":
        raise _UsageError("expected: optouts clear INSTALLATION FROM TO (or no argument, to list)")
    if args.org or args.installation or args.from_ or args.to:
        raise _UsageError("--org, --installation, --from and --to filter the list, not clear")
    _, installation, from_, to = args.clear
    reply = gateway_pb2.ClearOptOutResponse(cleared=client.clear_opt_out(installation, from_, to))

    def lines() -> list[str]:
        what = f"{to} from {from_} (installation {installation})"
        return [f"Cleared the opt-out of {what}" if reply.cleared else f"No opt-out of {what}"]

    _show(args, reply, lines)
    return 0


def _health(client: Client, args: argparse.Namespace) -> int:
    reply = client.check_health(args.service)
    _show(args, reply, lambda: [health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)])
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_FAILED


# -- the parsers --------------------------------------------------------------------------------


def _add_conversation_options(parser: argparse.ArgumentParser) -> None:
    """Who sends to whom: a send's, and (ext) a conversation signal's."""
    parser.add_argument("--org", required=True, help="the organisation")
    parser.add_argument(
        "--from", dest="from_", required=True, metavar="NUMBER", help="a number of the org"
    )
    parser.add_argument("--to", required=True, metavar="NUMBER", help="the recipient")
    parser.add_argument("--extension", default="", help="the sending user's extension")
    parser.add_argument("--domain", default="", help="the organisation's domain")
    parser.add_argument(
        "--integration", default="", metavar="ID", help="when several integrations hold --from"
    )


def _add_send_options(parser: argparse.ArgumentParser) -> None:
    _add_conversation_options(parser)
    parser.add_argument(
        "--idempotency-key", default="", metavar="KEY", help="a retry with it sends nothing again"
    )
    parser.add_argument(
        "--reply-to",
        default="",
        metavar="ID",
        help="the provider's id of the message this one answers",
    )
    parser.add_argument(
        "--metadata",
        action="append",
        type=_key_value("metadata"),
        metavar="KEY=VALUE",
        help="caller metadata, returned on delivery events (repeatable)",
    )
    _add_delivery_options(parser)


def _add_delivery_options(parser: argparse.ArgumentParser) -> None:
    """How a send waits (SendOptions; docs/delivery.md)."""
    parser.add_argument(
        "--queue", action="store_true", help="reply at once (state queued); the outcome is an event"
    )
    parser.add_argument(
        "--at",
        type=delivery.send_time,
        metavar="TIME",
        help="send at this time: ISO 8601 with an offset (…+01:00, …Z), or +10m, +2h, +30s",
    )
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="may leave before earlier messages from --from to --to",
    )


def _add_installation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--property",
        action="append",
        type=_key_value("property"),
        metavar="NAME=VALUE",
        help="a property value, split at the first '=' (repeatable)",
    )
    parser.add_argument(
        "--number",
        action="append",
        type=delivery.argument_type(delivery.number_with_rate),
        metavar="NUMBER[@RATE][=EXT,...]",
        help=(
            "a number, its own send rate (e.g. @3/s) and the users/extensions assigned to it "
            "(repeatable)"
        ),
    )
    parser.add_argument("--region", help="ISO 3166 region for national-format numbers, e.g. US")


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    """An installation's send limits (SendLimits; docs/delivery.md)."""
    group = parser.add_argument_group("send limits (unset: the definition's defaults)")
    rate = delivery.argument_type(delivery.parse_rate)
    group.add_argument(
        "--rate-per-number", type=rate, metavar="N[/s]", help="each number's rate (0: no limit)"
    )
    group.add_argument(
        "--rate-per-installation", type=rate, metavar="N[/s]", help="all numbers together"
    )
    group.add_argument(
        "--rate-unit",
        choices=("messages", "segments"),
        help="what the rates given count (default: messages)",
    )
    group.add_argument(
        "--burst", type=_count32, metavar="N", help="most sent at once (default: 1 s worth)"
    )
    group.add_argument(
        "--max-queued", type=_count32, metavar="N", help="most messages waiting at once"
    )
    group.add_argument(
        "--max-segments", type=_count32, metavar="N", help="most SMS segments a message may take"
    )


def _add_page_size(
    parser: argparse.ArgumentParser, help_text: str = "records per reply (default: the server's)"
) -> None:
    # Every page is listed either way (the next page token is followed); this sets how much one
    # reply carries. The server caps it, and also ends a page at its reply size limit.
    parser.add_argument("--page-size", type=_page_size, default=0, metavar="N", help=help_text)


def add_parsers(subparsers: Any) -> None:
    """Adds this group's commands to the ``msgbridge`` parser's subparsers."""
    connection = _connection_parser()

    def command(name: str, action: Action, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help_text, description=help_text, parents=[connection]
        )
        parser.set_defaults(handler=_command(action))
        return parser

    parser = command("register", _register, "register (or re-register) an integration definition")
    parser.add_argument("file", metavar="FILE", help="the definition's JSON file ('-': stdin)")
    parser.add_argument("--validate-only", action="store_true", help="check it, store nothing")

    parser = command("integrations", _integrations, "list the registered integrations")
    _add_page_size(parser)

    parser = command("integration", _integration, "show an integration and its property form")
    parser.add_argument("id", metavar="ID")
    parser.add_argument(
        "--version", type=_version, default=0, help="a given version (default: the latest)"
    )

    parser = command("delete-integration", _delete_integration, "delete an integration")
    parser.add_argument("id", metavar="ID")
    parser.add_argument(
        "--force", action="store_true", help="even while installations use it (disables them)"
    )

    parser = command("enable", _enable, "enable an integration for an organisation")
    parser.add_argument("--org", required=True, help="the organisation")
    parser.add_argument("--integration", required=True, metavar="ID", help="the integration")
    _add_installation_options(parser)
    _add_limit_options(parser)

    parser = command("update-installation", _update_installation, "change an installation")
    parser.add_argument("id", metavar="ID")
    _add_installation_options(parser)
    parser.add_argument(
        "--clear-property", action="append", metavar="NAME", help="clear a property (repeatable)"
    )
    parser.add_argument(
        "--no-numbers", action="store_true", help="remove every number (--number replaces all)"
    )
    _add_limit_options(parser)
    parser.add_argument(
        "--no-limits", action="store_true", help="every limit back to the definition's default"
    )

    parser = command("installations", _installations, "list installations")
    parser.add_argument("--org", help="only this organisation's")
    parser.add_argument("--integration", metavar="ID", help="only this integration's")
    _add_page_size(parser)

    parser = command("installation", _installation, "show an installation")
    parser.add_argument("id", metavar="ID")

    parser = command("disable", _disable, "disable an installation")
    parser.add_argument("id", metavar="ID")

    parser = command("send", _send, "send an SMS (or a chat message)")
    _add_send_options(parser)
    parser.add_argument("--text", default="", help="the message (required without --template)")
    parser.add_argument(
        "--reply",
        action="append",
        type=reply_argument,
        metavar="ID:TITLE[:DESCRIPTION]",
        help="a quick reply or button offered with the message (repeatable, at most 13)",
    )
    parser.add_argument(
        "--template", default="", metavar="NAME", help="an approved message template's name"
    )
    parser.add_argument(
        "--language", default="", metavar="CODE", help="the template's language (e.g. en_US)"
    )
    parser.add_argument(
        "--param",
        action="append",
        metavar="TEXT",
        help="the template's next parameter (repeatable, in order)",
    )

    parser = command("send-file", _send_file, "send a file (MMS)")
    _add_send_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--url",
        action="append",
        help="the file's URL; repeat it for several files (at most 10)",
    )
    source.add_argument(
        "--file", metavar="PATH", help="a local file: uploaded to the gateway, which hosts it"
    )
    source.add_argument(
        "--media-id", metavar="ID", help="a file stored by 'media upload' (or an inbound one)"
    )
    parser.add_argument("--text", default="", help="a caption")
    parser.add_argument("--media-type", default="", metavar="TYPE", help="e.g. image/png")
    parser.add_argument("--filename", default="", help="the file's name")
    parser.add_argument(
        "--kind",
        dest="media_kind",
        default="",
        choices=("image", "video", "audio", "document"),
        help="the first file's kind (default: from --media-type, else the URL's extension)",
    )

    # (ext) conversation signals (docs/format.md, "Conversation signals"): made at once
    parser = command("typing", _signal, "show the recipient that --from is typing")
    parser.set_defaults(signal="typing")
    _add_conversation_options(parser)
    parser.add_argument(
        "--message-id",
        default="",
        metavar="ID",
        help="the provider's id of the inbound message being answered (some providers need it)",
    )

    parser = command("mark-read", _signal, "tell the provider an inbound message was read")
    parser.set_defaults(signal="mark-read")
    _add_conversation_options(parser)
    parser.add_argument(
        "--message-id",
        required=True,
        metavar="ID",
        help="the provider's id of the inbound message read (its event's provider_message_id)",
    )

    parser = command("message", _message, "show a sent message and its state")
    parser.add_argument("id", metavar="ID")

    parser = command("messages", _messages, "list sent and queued messages, newest first")
    parser.add_argument("--org", help="only this organisation's")
    parser.add_argument("--installation", metavar="ID", help="only this installation's")
    parser.add_argument(
        "--state",
        action="append",
        type=delivery.argument_type(delivery.parse_states),
        metavar="STATE[,STATE...]",
        help="only in these states: " + ", ".join(delivery.MESSAGE_STATE_NAMES),
    )
    parser.add_argument(
        "--since",
        type=delivery.past_time,
        metavar="TIME",
        help="created at or after: ISO 8601 with an offset, or a duration ago (2h)",
    )
    parser.add_argument(
        "--until", type=delivery.past_time, metavar="TIME", help="created before (as --since)"
    )
    _add_page_size(parser)

    parser = command("cancel", _cancel, "cancel a queued or scheduled message")
    parser.add_argument("id", metavar="MESSAGE_ID")

    parser = command("events", _events, "print inbound events (stored, or --follow new ones)")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep streaming until interrupted; when the server stops or restarts, say so on "
        "stderr and reconnect with backoff, resuming after the last cursor printed (a "
        "--consumer after its last acknowledged event)",
    )
    parser.add_argument(
        "--give-up-after",
        type=_give_up,
        default=DEFAULT_GIVE_UP_AFTER_S,
        metavar="SECONDS",
        help=f"with --follow: exit 1 when it could not reconnect for this long, 0 never "
        f"(default: {DEFAULT_GIVE_UP_AFTER_S:g})",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--after", type=_cursor, metavar="CURSOR", help="events after this cursor")
    start.add_argument("--earliest", action="store_true", help="from the earliest kept event")
    parser.add_argument(
        "--consumer", metavar="NAME", help="a durable consumer (with --follow; acknowledges)"
    )
    parser.add_argument("--org", help="only this organisation's")
    parser.add_argument("--integration", metavar="ID", help="only this integration's")
    parser.add_argument(
        "--type",
        action="append",
        type=_event_type,
        metavar="|".join(human.EVENT_TYPE_NAMES),
        help=(
            "only events of this type (repeatable); without it: message, mms and the delivery "
            "reports; optedOut, optedIn, messageRead, messageStatus, typing, conversationStarted "
            "and messageDeleted come only when named"
        ),
    )
    _add_page_size(parser, "events per reply (with --follow: per batch; default: the server's)")

    parser = command("unmatched", _unmatched, "list webhook requests that produced no event")
    parser.add_argument("--integration", metavar="ID", help="only this integration's")
    _add_page_size(parser)

    parser = command(
        "webhooks", _webhooks, "list the latest webhook requests, newest first, with their outcome"
    )
    parser.add_argument("--integration", metavar="ID", help="only this integration's")
    parser.add_argument(
        "--limit", type=_limit, default=50, metavar="N", help="at most N requests (default: 50)"
    )
    _add_page_size(parser)

    parser = command("replay", _replay, "match a kept webhook request again")
    parser.add_argument("id", metavar="ID")

    parser = command("retry-subscription", _retry_subscription, "make Subscribe requests now")
    parser.add_argument("id", metavar="ID")

    parser = command(
        "optouts",
        _optouts,
        "list recipients who opted out, or clear one: optouts clear INSTALLATION FROM TO",
    )
    parser.add_argument(
        "clear", nargs="*", metavar="clear INSTALLATION FROM TO", help="clear this opt-out"
    )
    parser.add_argument("--org", help="only this organisation's")
    parser.add_argument("--installation", metavar="ID", help="only this installation's")
    parser.add_argument(
        "--from", dest="from_", metavar="NUMBER", help="only those of this sender (our number)"
    )
    parser.add_argument("--to", metavar="NUMBER", help="only those of this recipient")
    _add_page_size(parser)

    parser = command("health", _health, "check the service's health (grpc.health.v1)")
    parser.add_argument("--service", default="", help="a service name (default: the server)")


# What the other command modules (_media_cli) share with this one.
UsageError = _UsageError
connection_parser = _connection_parser
run_command = _command
show = _show
