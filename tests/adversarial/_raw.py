"""HTTP over a bare socket, for what a well-behaved client library will not send: wrong lengths,
broken chunking, a head or a body trickled a byte at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

__all__ = ["exchange", "head", "trickle"]

CLOSED = "closed"


def head(path: str, *headers: str, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _status(answer: bytes) -> str:
    """The status code of the first response in ``answer``, or ``closed`` when none came."""
    if not answer.startswith(b"HTTP/1."):
        return CLOSED
    return answer.split(b" ", 2)[1].decode()


async def exchange(
    port: int,
    chunks: Sequence[bytes],
    *,
    pause_s: float = 0.0,
    timeout_s: float = 15.0,
    half_close: bool = False,
) -> tuple[str, bool]:
    """Write ``chunks`` (``pause_s`` apart; stops writing once the server has answered or
    closed), then read until the server closes or ``timeout_s``. The first response's status
    (or ``closed``), and whether the server closed the connection in time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read_all() -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)

    closed = False
    reading = asyncio.create_task(read_all())
    try:
        async with asyncio.timeout(timeout_s):
            for chunk in chunks:
                if reading.done():
                    break
                writer.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                if pause_s:
                    await asyncio.wait({reading}, timeout=pause_s)
            if half_close and not reading.done():
                with contextlib.suppress(OSError):
                    writer.write_eof()
            with contextlib.suppress(ConnectionError):
                await reading
            closed = True
    except TimeoutError:
        pass
    except ConnectionError:
        closed = True
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return _status(bytes(received)), closed


async def trickle(port: int, data: bytes, *, pause_s: float, timeout_s: float) -> tuple[str, bool]:
    """``data`` a byte at a time, ``pause_s`` apart (a slowloris client)."""
    return await exchange(
        port, [data[i : i + 1] for i in range(len(data))], pause_s=pause_s, timeout_s=timeout_s
    )
