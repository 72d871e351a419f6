"""The service's listening addresses, bound before anything else is made.

``msgbridge serve`` binds its ports first, so that an address already taken (by another
``msgbridge serve``, say) is refused with one line naming the setting — before the data
directory, the secret key or the database exist. No socket takes ``SO_REUSEPORT``: two servers
on one port would split the calls between two databases (README, "Configuration").
"""

from __future__ import annotations

import errno
import os
import socket

__all__ = ["ListenError", "check_free", "listen_socket"]

_BACKLOG = 1024


class ListenError(OSError):
    """An address the service was told to listen on cannot be bound; the message says which."""


def _explain(setting: str, listen: str, exc: OSError) -> ListenError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason += " (another msgbridge serve, or another program, listens there)"
    return ListenError(f"{setting} {listen}: cannot listen: {reason}")


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, (str(address[0]), int(address[1]))


def listen_socket(setting: str, listen: str) -> socket.socket:
    """A listening socket on ``listen`` (``HOST:PORT``; port 0 picks one), without
    ``SO_REUSEPORT``; :class:`ListenError` naming ``setting`` when it cannot be bound."""
    host, _, port = listen.rpartition(":")
    try:
        family, address = _resolve(host, int(port))
        return socket.create_server(address, family=family, backlog=_BACKLOG)
    except OSError as exc:
        raise _explain(setting, listen, exc) from None


def check_free(setting: str, listen: str) -> None:
    """Refuse ``listen`` now when it cannot be bound (a server that binds it itself — gRPC —
    would report it less clearly); port 0 is always free."""
    if listen.rpartition(":")[2] == "0":
        return
    listen_socket(setting, listen).close()
