"""``msgbridge media upload PATH`` and ``msgbridge media get MEDIA_ID [-o FILE]``: files stored
by the gateway (docs/media.md), with the connection options, ``--json`` and error reports of the
other service commands (``_service_cli``). ``send-file --file`` uploads with :func:`upload`.

``media get`` writes the bytes to stdout without ``-o`` (never to a terminal: give ``-o -`` for
that), and refuses to overwrite an existing file without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from msgbridge.v1 import gateway_pb2

from . import _human_output as human
from ._client import Client
from ._service_cli import UsageError, connection_parser, run_command, show

__all__ = ["add_parsers", "upload"]


def upload(
    client: Client, *, org_id: str, path: str, filename: str | None, integration_id: str
) -> gateway_pb2.MediaInfo:
    """Upload the file at ``path`` (read a chunk at a time); an unreadable one is a usage
    error."""
    try:
        return client.upload_media(org_id, path, filename=filename, integration_id=integration_id)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _upload(client: Client, args: argparse.Namespace) -> int:
    info = upload(
        client,
        org_id=args.org,
        path=args.path,
        filename=args.filename,
        integration_id=args.integration,
    )
    show(args, info, lambda: [f"Uploaded {args.path}", *human.media_lines(info)])
    return 0


def _get(client: Client, args: argparse.Namespace) -> int:
    output = args.output
    if output is None or output == "-":
        if args.json:
            raise UsageError("--json prints the file's description: give -o FILE")
        if output is None and sys.stdout.isatty():
            raise UsageError("not writing a file's bytes to a terminal: give -o FILE (or -o -)")
        sys.stdout.flush()
        client.download_media(args.org, args.id, sys.stdout.buffer)
        return 0
    try:
        info = client.download_media(args.org, args.id, output, overwrite=args.force)
    except FileExistsError as exc:
        raise UsageError(f"{output} exists (--force to overwrite it)") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{output} is a directory") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    show(args, info, lambda: [f"Saved {info.media_id} to {output}", *human.media_lines(info)])
    return 0


def add_parsers(subparsers: Any) -> None:
    """Adds ``media`` and its subcommands to the ``msgbridge`` parser's subparsers."""
    connection = connection_parser()
    media = subparsers.add_parser(
        "media",
        help="upload a file for send-file, or get a stored file",
        description="Files the gateway stores (docs/media.md): uploaded for send-file, or "
        "fetched from an inbound message.",
    )
    commands = media.add_subparsers(dest="media_command", required=True, metavar="COMMAND")

    help_text = "upload a file (sent with send-file's media id); prints its id and URL"
    parser = commands.add_parser(
        "upload", help=help_text, description=help_text, parents=[connection]
    )
    parser.set_defaults(handler=run_command(_upload))
    parser.add_argument("path", metavar="PATH", help="the file")
    parser.add_argument("--org", required=True, help="the organisation")
    parser.add_argument(
        "--integration", default="", metavar="ID", help="check the file against its content types"
    )
    parser.add_argument("--filename", help="its name for your records (default: PATH's name)")

    help_text = "write a stored file to stdout or to a file"
    parser = commands.add_parser("get", help=help_text, description=help_text, parents=[connection])
    parser.set_defaults(handler=run_command(_get))
    parser.add_argument("id", metavar="MEDIA_ID")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write it here ('-': stdout, the default)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument(
        "--org", default="", help="its organisation (default: any your token may read)"
    )
