"""Checks several case modules share: statuses of webhooks, the send helpers, the leak search."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from ._case import CaseFailed, expect, expect_status
from ._env import Env, RpcResult, send_request

__all__ = [
    "CLASS_NAME",
    "HOSTILE_BODY",
    "REFUSED_BODY",
    "message_id_to",
    "no_class_name",
    "post_status",
    "send",
]

#: What a hostile body is answered: refused as unreadable or too large.
HOSTILE_BODY = (400, 413)
#: A body that parses but means nothing may also be kept as unmatched (200).
REFUSED_BODY = (200, 400, 413)
#: A Python exception's class name, which an answer must not carry.
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception)\b|Traceback|<class ")


async def post_status(
    env: Env,
    url: str,
    body: bytes,
    content_type: str | None,
    wanted: tuple[int, ...],
    **headers: str,
) -> str:
    """POST ``body`` and check its status is one of ``wanted``."""
    if content_type is not None:
        headers["Content-Type"] = content_type
    return expect_status(await env.post(url, body, headers), wanted)


async def send(
    env: Env, number: str, text: str, token: str | None = None, to: str = "+15557654321"
) -> RpcResult:
    request = send_request("acme", number, text, to=to)
    return await env.gateway.call("SendMessage", request, token or env.tokens.full)


def message_id_to(env: Env, to: str) -> str:
    """The id of the message sent to ``to`` (read from the SQLite file: a refused send's reply
    does not carry it)."""
    database = Path(env.data_dir / "msgbridge.db")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT id FROM messages WHERE to_number = ?", (to,)).fetchone()
    if row is None:
        raise CaseFailed(f"no message to {to} was stored")
    return str(row[0])


def no_class_name(result: RpcResult) -> None:
    found = CLASS_NAME.search(result.text())
    expect(found is None, f"the answer names {found.group(0) if found else ''!r}")
