"""``python -m tests.reliability._recording_provider``: the fake provider, with every send it
receives appended to a file before it is answered, so that what it received survives its SIGKILL.

The fake provider keeps its records in memory (:mod:`server.demo`); the queued-send phase kills
it, and must still tell which messages reached it and how often. Each request to a path outside
``/_fake/`` is written as one JSON line ``{"path": ..., "body": ...}`` (the body as text) with a
plain ``write`` before the handler answers: a process killed after that line was written leaves
it in the file (the kernel has it), and a request it never recorded was never answered either.
The file's line order is the order of receipt. Sends are answered after ``--delay-s``, as real
providers answer, so that kills find sends in flight.

It also serves the MMS files of the run: ``GET /media/<name>`` is answered as
:func:`tests.reliability._media_files.media_file` says (never recorded: it is no send).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.demo import Answer, build_fake_provider

from ._media_files import media_file

__all__ = ["main", "read_records"]


def read_records(path: Path) -> list[dict[str, str]]:
    """The records in ``path``, in order of receipt (a last line cut by a kill is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            records.append(entry)
    return records


@web.middleware
async def _media(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "GET" or not request.path.startswith("/media/"):
        return await handler(request)
    file = media_file(request.path.removeprefix("/media/"))
    if file.delay_s > 0:
        await asyncio.sleep(file.delay_s)
    kind = "image/png" if file.status == 200 else "text/plain"
    return web.Response(status=file.status, body=file.body, content_type=kind)


def _recorder(out: TextIO) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/_fake/"):
            body = await request.read()  # kept by aiohttp: the handler reads it again
            line = {"path": request.path, "body": body.decode(errors="replace")}
            out.write(json.dumps(line) + "\n")
            out.flush()
        return await handler(request)

    return record


async def _serve(port: int, record: Path, delay_s: float, max_recorded: int) -> None:
    app, state = build_fake_provider(max_recorded=max_recorded)
    with record.open("a", encoding="utf-8") as out:
        app.middlewares.extend((_media, _recorder(out)))
        if delay_s > 0:
            state.script("*", Answer(delay_s=delay_s))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"fake provider listening on http://127.0.0.1:{bound}", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability._recording_provider")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--record", type=Path, required=True, help="file the sends are added to")
    parser.add_argument("--delay-s", type=float, default=0.0, help="answer after this long")
    parser.add_argument(
        "--max-recorded", type=int, default=100_000, help="requests kept in memory at most"
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.record, args.delay_s, args.max_recorded))


if __name__ == "__main__":
    main()
