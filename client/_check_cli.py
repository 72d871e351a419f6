"""``msgbridge check``'s arguments (the linter itself: ``_check``).

The engine is imported only when the command runs: ``msgbridge --help`` and the commands that
talk to a running service start without loading it.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["REQUESTS", "add_parsers"]

#: (ext) "Token": a Token auth's token request (docs/format.md, "Tokens from a request")
#: (ext) "SendTyping", "MarkRead": the conversation signals (docs/format.md, "Conversation signals")
#: (ext) "LookupContact": a sender's name looked up (docs/format.md, "Contact names")
REQUESTS = (
    "SendMessage",
    "SendFile",
    "SendTyping",
    "MarkRead",
    "LookupContact",
    "Subscribe",
    "Unsubscribe",
    "Token",
)


def add_parsers(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="check integration definitions (no server needed)",
        description="Check integration definition files: every error and warning with its JSON "
        "Pointer. With --render, show the HTTP request a definition makes; with --match, show "
        "what a webhook body gives and what the live endpoint answers; with --response, what a "
        "provider's answer makes of a send. Exit status: 0 no errors, 1 errors (a payload kept "
        "as unmatched, a send the answer fails), 2 a file is unreadable or not JSON.",
    )
    check.add_argument("files", nargs="*", metavar="FILE", help="definition files to check")
    check.add_argument(
        "--json",
        action="store_true",
        help="print JSON Lines: a JSON object per problem, or the one result of --render, "
        "--match or --response",
    )
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
    modes.add_argument(
        "--response",
        metavar="FILE",
        help="apply the send request's response_map and response_rules of the definition in FILE "
        "to a provider answer (--answer, --status, --content-type, --header)",
    )
    check.add_argument(
        "--vars",
        metavar="VARS",
        help="for --render: a JSON object of variable and property name → string or list; for "
        "--response (optional): property values, for the variant they choose and the secrets "
        "masked in the error",
    )
    check.add_argument(
        "--request",
        choices=REQUESTS,
        default="SendMessage",
        help="for --render: which request to show (default: SendMessage; Token: a Token "
        "auth's token request); for --response: "
        "SendMessage, SendFile, SendTyping or MarkRead",
    )
    check.add_argument(
        "--answer",
        metavar="BODY",
        help="for --response: a file holding the provider answer's body (may be empty)",
    )
    check.add_argument(
        "--status",
        type=int,
        metavar="N",
        help="for --response: the provider answer's HTTP status (default: 200)",
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
        help="for --match and --response: the body's Content-Type (default: JSON when it starts "
        "with { or [, XML when it starts with <, else form for --match, text for --response)",
    )
    check.add_argument(
        "--method", default="POST", help="for --match: the request method (default: POST)"
    )
    check.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="for --match: a request header the webhook carries; for --response: a header of "
        "the answer, such as Retry-After (repeatable)",
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from ._check import check  # the engine loads for this command only

    return check(args)
