"""Fewer glibc malloc arenas, so that memory freed by one thread can serve another.

glibc gives each thread that allocates while another holds the main arena an arena of its own,
up to eight per core. The service's threads (the SQLite writer and readers, the worker of
:mod:`server._cpu`, grpc's threads) each keep the large blocks they freed — a webhook body, a
parsed definition — in their own arena, so the process's resident memory grows with the number of
threads that ever handled a large input rather than with what is in use (measured in the
adversarial run: about 270 MB with the default, 234 MB with two arenas). Two arenas keep the
threads from contending on one lock while letting freed memory be reused. ``MALLOC_ARENA_MAX``
in the environment, when an operator sets it, wins; elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
_ARENAS = 2


def limit_malloc_arenas() -> bool:
    """Cap glibc's arenas at two (call before any thread starts); whether it was done."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # glibc read it at start-up
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, _ARENAS))
