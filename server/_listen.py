"""The service's listening addresses, bound before anything else is made.

``msgbridge serve`` binds its ports first, so that an address already taken (by another
``msgbridge serve``, say) is refused with one line naming the setting — before the data
directory, the secret key or the database exist. One service's sockets take no ``SO_REUSEPORT``:
two servers on one port would split the calls between two databases (README, "Configuration").

The workers of ``msgbridge serve --workers N`` (server/_supervisor.py) do share their ports, on
purpose and on one database: their supervisor holds each port (:func:`hold_port`: bound with
``SO_REUSEPORT``, never listening, so it is given no connection), and each worker listens on it
with ``SO_REUSEPORT`` too (``shared``); the kernel spreads new connections among the listeners.
A bind without ``SO_REUSEPORT`` — another ``msgbridge serve`` — is still refused.
"""

from __future__ import annotations

import errno
import os
import socket

__all__ = ["ListenError", "check_free", "hold_port", "listen_socket"]

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


def listen_socket(setting: str, listen: str, *, shared: bool = False) -> socket.socket:
    """A listening socket on ``listen`` (``HOST:PORT``; port 0 picks one), with
    ``SO_REUSEPORT`` only when ``shared`` (a worker's, on the port its supervisor holds);
    :class:`ListenError` naming ``setting`` when it cannot be bound."""
    host, _, port = listen.rpartition(":")
    try:
        family, address = _resolve(host, int(port))
        return socket.create_server(address, family=family, backlog=_BACKLOG, reuse_port=shared)
    except OSError as exc:
        raise _explain(setting, listen, exc) from None


def hold_port(setting: str, listen: str) -> tuple[socket.socket, str]:
    """The supervisor's hold on ``listen``: a socket bound with ``SO_REUSEPORT`` that never
    listens, and the address with the port it got (port 0 picks one). Refused, like
    :func:`listen_socket`, when anything else holds the port."""
    check_free(setting, listen)  # another server (no SO_REUSEPORT) is refused in one line
    host, _, port = listen.rpartition(":")
    try:
        family, address = _resolve(host, int(port))
        held = socket.socket(family, socket.SOCK_STREAM)
        try:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            held.bind(address)
        except OSError:
            held.close()
            raise
    except OSError as exc:
        raise _explain(setting, listen, exc) from None
    return held, f"{host}:{held.getsockname()[1]}"


def check_free(setting: str, listen: str) -> None:
    """Refuse ``listen`` now when it cannot be bound (a server that binds it itself — gRPC —
    would report it less clearly); port 0 is always free."""
    if listen.rpartition(":")[2] == "0":
        return
    listen_socket(setting, listen).close()
