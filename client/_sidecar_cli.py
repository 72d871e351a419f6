"""``msgbridge sidecar``: run the webhook sidecar alone, forwarding to a core over gRPC.

So that it can sit at the network edge while the core stays internal. The core's bearer token
may come from ``MSGBRIDGE_CORE_TOKEN`` instead of the command line (where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from server._event_loop import EVENT_LOOPS

from ._arguments import INT32_MAX, HelpFormatter, integer, seconds

__all__ = ["add_parsers"]

_TOKEN_ENV = "MSGBRIDGE_CORE_TOKEN"  # noqa: S105 - the variable's name, not a secret


def add_parsers(subparsers: Any) -> None:
    sidecar = subparsers.add_parser(
        "sidecar",
        help="run the webhook sidecar alone, in front of a core",
        description="Serve the providers' webhooks over HTTP and forward each one, raw, to the "
        "core's internal Ingest gRPC service; answer with what the core decides (503 while the "
        "core is unreachable, so that providers retry). Runs until SIGINT or SIGTERM.",
        formatter_class=HelpFormatter,
    )
    sidecar.add_argument(
        "--core",
        required=True,
        action="append",
        metavar="HOST:PORT",
        help="the core's gRPC address; repeat it for replicas of one database: a webhook goes "
        "to the first that answers, and a core that is not reachable is passed over for a while "
        '(docs/operations.md, "The sidecar at the edge")',
    )
    sidecar.add_argument(
        "--http-listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address the sidecar listens on (default: 127.0.0.1:8080)",
    )
    sidecar.add_argument(
        "--public-url",
        metavar="URL",
        help="base of the webhook URLs the providers call (default: http:// plus --http-listen)",
    )
    sidecar.add_argument(
        "--max-body",
        type=integer("the largest body", low=1, high=INT32_MAX),
        default=1_048_576,
        help="largest body accepted, bytes (default: 1048576)",
    )
    sidecar.add_argument(
        "--timeout",
        type=seconds("the receive timeout"),
        default=30.0,
        help="time to receive one request, seconds (default: 30)",
    )
    sidecar.add_argument(
        "--core-timeout",
        type=seconds("the core timeout"),
        default=10.0,
        help="deadline of one call to the core, seconds (default: 10)",
    )
    sidecar.add_argument(
        "--core-token",
        metavar="TOKEN",
        help=f"bearer token sent to the core (env: {_TOKEN_ENV}; default: none)",
    )
    sidecar.add_argument(
        "--core-ca",
        type=Path,
        metavar="PEM",
        help="reach the core over TLS, trusting these root certificates (default: plaintext)",
    )
    sidecar.add_argument(
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default: INFO)"
    )
    sidecar.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=EVENT_LOOPS[0],
        help="the event loop: uvloop (asyncio's where uvloop is not installed) or asyncio"
        " (default: uvloop)",
    )
    sidecar.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="log line format (default: json)",
    )
    sidecar.set_defaults(handler=_sidecar)


def _sidecar(args: argparse.Namespace) -> int:
    import grpc

    from server._logging import configure_logging
    from server._process import run_process
    from server.sidecar import run_sidecar, split_host_port

    try:
        for core in args.core:
            split_host_port(core)
        split_host_port(args.http_listen)
    except ValueError as exc:
        print(f"msgbridge sidecar: {exc}", file=sys.stderr)
        return 2
    token = args.core_token or os.environ.get(_TOKEN_ENV) or None
    credentials = None
    if args.core_ca is not None:
        try:
            credentials = grpc.ssl_channel_credentials(root_certificates=args.core_ca.read_bytes())
        except OSError as exc:
            print(f"msgbridge sidecar: {exc}", file=sys.stderr)
            return 2
    public_url = args.public_url or f"http://{args.http_listen}"
    configure_logging(args.log_level, args.log_format)
    return run_process(
        "sidecar",
        args.event_loop,
        lambda: run_sidecar(
            cores=args.core,
            http_listen=args.http_listen,
            public_url=public_url,
            max_body=args.max_body,
            request_timeout_s=args.timeout,
            core_token=token,
            core_credentials=credentials,
            core_timeout_s=args.core_timeout,
        ),
        failures=(OSError, ValueError),
    )
