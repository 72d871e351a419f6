"""``msgbridge serve --workers N``: N service processes on one machine, on its one set of ports
and one PostgreSQL database (docs/operations.md, "Workers").

    supervisor: hold each port (server/_listen.py: bound, never listening — another
                ``msgbridge serve`` on it is refused) → start N workers (spawned processes)
    worker i:   the service as ``msgbridge serve`` runs it, listening on the held ports beside
                its siblings (the kernel spreads new connections among them), its metrics on
                ``metrics_listen``'s port + i → tells the supervisor it serves
    supervisor: once every worker serves, logs ``workers serving``; a worker that exits on its
                own is started again after a pause that doubles while it keeps failing, and
                after ``_MAX_FAILURES`` failures in a row every worker is stopped (exit 1);
                SIGTERM or SIGINT is passed to every worker, which drains as ``msgbridge serve``
                does, and the supervisor exits when they have.

What one process shares with another goes through the database, as between replicas: the
durable consumers' cursors, idempotency keys, send rates and leases, events (each worker's
subscribers are woken by PostgreSQL's NOTIFY). Only PostgreSQL lets several processes write one
store; the settings refuse more than one worker on SQLite (server/config.py).

A worker is spawned, not forked: gRPC's core does not survive a fork once it has started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final

from ._listen import hold_port
from .config import Settings

__all__ = ["supervise"]

logger = logging.getLogger(__name__)

#: Failures in a row (a worker that exits before it serves, or within ``_STEADY_S`` of it) after
#: which the supervisor gives up: a worker that cannot start will not start by trying forever.
_MAX_FAILURES: Final = 5
#: A worker that served this long and then exited is restarted at once: it was not failing.
_STEADY_S: Final = 60.0
_FIRST_PAUSE_S: Final = 0.5
_MAX_PAUSE_S: Final = 30.0
#: How long a worker has to report that it serves.
_START_TIMEOUT_S: Final = 120.0
#: How often a worker looks whether its supervisor is still there (an orphan stops itself).
_PARENT_CHECK_S: Final = 1.0


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    ready: Connection
    started: float = field(default_factory=time.monotonic)
    serving_since: float | None = None


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` workers until SIGTERM or SIGINT; the exit status (0: stopped as
    asked). :class:`~server._listen.ListenError` when a port is taken."""
    holds, shared = _hold_ports(settings)
    stopping = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stopping.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return _Supervisor(shared, stopping).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for held in holds:
            held.close()


def _hold_ports(settings: Settings) -> tuple[list[socket.socket], Settings]:
    """Hold the gRPC port and (with the in-process sidecar) the webhook port; the settings the
    workers get, with the ports that port 0 picked."""
    holds: list[socket.socket] = []
    try:
        held, grpc_listen = hold_port("grpc_listen", settings.grpc_listen)
        holds.append(held)
        http_listen = settings.http_listen
        if settings.sidecar:
            held, http_listen = hold_port("http_listen", settings.http_listen)
            holds.append(held)
    except BaseException:
        for held in holds:
            held.close()
        raise
    return holds, dataclasses.replace(settings, grpc_listen=grpc_listen, http_listen=http_listen)


def _worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s settings: its metrics on ``metrics_listen``'s port + ``index`` (port 0:
    one of its own), everything else as given."""
    if not settings.metrics_listen:
        return settings
    host, _, port = settings.metrics_listen.rpartition(":")
    if port == "0":
        return settings
    return dataclasses.replace(settings, metrics_listen=f"{host}:{int(port) + index}")


class _Supervisor:
    def __init__(self, settings: Settings, stopping: threading.Event) -> None:
        self._settings = settings
        self._stopping = stopping
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._failures = 0
        self._restart_at: dict[int, float] = {}

    def run(self) -> int:
        for index in range(self._settings.workers):
            self._start(index)
        if not self._wait_serving():
            self._stop_all()
            return 0 if self._stopping.is_set() else 1
        logger.info(
            "workers serving",
            extra={
                "port": int(self._settings.grpc_listen.rpartition(":")[2]),
                "http_port": (
                    int(self._settings.http_listen.rpartition(":")[2])
                    if self._settings.sidecar
                    else None
                ),
                "workers": len(self._workers),
                "pids": [w.process.pid for w in self._workers.values()],
            },
        )
        status = self._keep_running()
        self._stop_all()
        return status

    def _start(self, index: int) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=serve_worker,
            args=(_worker_settings(self._settings, index), index, send, os.getpid()),
            name=f"msgbridge-worker-{index}",
        )
        process.start()
        send.close()
        self._workers[index] = _Worker(index, process, receive)

    def _wait_serving(self) -> bool:
        """Wait until every worker serves; False when one exits first (or none may be waited
        for longer, or the supervisor is told to stop)."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._stopping.is_set():
            waiting = [w for w in self._workers.values() if w.serving_since is None]
            if not waiting:
                return True
            if time.monotonic() > deadline:
                logger.error("a worker did not start in time", extra={"seconds": _START_TIMEOUT_S})
                return False
            for worker in waiting:
                if not worker.process.is_alive():
                    logger.error(
                        "a worker exited while starting",
                        extra={"worker": worker.index, "exit_code": worker.process.exitcode},
                    )
                    return False
            self._read_ready(waiting, timeout=0.5)
        return False

    def _read_ready(self, waiting: list[_Worker], timeout: float) -> None:
        objects: list[Any] = [w.ready for w in waiting] + [w.process.sentinel for w in waiting]
        for ready in multiprocessing.connection.wait(objects, timeout=timeout):
            for worker in waiting:
                if ready is worker.ready:
                    with contextlib.suppress(EOFError, OSError):
                        worker.ready.recv()
                        worker.serving_since = time.monotonic()

    def _keep_running(self) -> int:
        while not self._stopping.is_set():
            now = time.monotonic()
            for index, at in list(self._restart_at.items()):
                if now >= at:
                    del self._restart_at[index]
                    self._start(index)
                    logger.info(
                        "worker started again",
                        extra={"worker": index, "pid": self._workers[index].process.pid},
                    )
            alive = [w for i, w in self._workers.items() if i not in self._restart_at]
            self._read_ready([w for w in alive if w.serving_since is None], timeout=0.0)
            for worker in alive:
                if worker.process.is_alive() or self._stopping.is_set():
                    continue
                worker.process.join()
                worker.ready.close()
                if not self._schedule_restart(worker, now):
                    return 1
            objects: list[Any] = [w.process.sentinel for w in alive]
            objects += [w.ready for w in alive if w.serving_since is None]
            multiprocessing.connection.wait(objects, timeout=0.5)
        return 0

    def _schedule_restart(self, worker: _Worker, now: float) -> bool:
        """Start ``worker`` again after a pause; False when it has failed too often."""
        steady = worker.serving_since is not None and now - worker.serving_since >= _STEADY_S
        self._failures = 0 if steady else self._failures + 1
        logger.warning(
            "a worker exited",
            extra={
                "worker": worker.index,
                "exit_code": worker.process.exitcode,
                "failures_in_a_row": self._failures,
            },
        )
        if self._failures >= _MAX_FAILURES:
            logger.error(
                "workers keep failing; stopping them all", extra={"failures": self._failures}
            )
            return False
        pause = 0.0 if steady else min(_FIRST_PAUSE_S * 2 ** (self._failures - 1), _MAX_PAUSE_S)
        self._restart_at[worker.index] = now + pause
        return True

    def _stop_all(self) -> None:
        """SIGTERM to every worker (each drains as ``msgbridge serve`` does), then wait for them:
        a send's grace and the sidecar's shutdown, with some to spare; SIGKILL after that."""
        running = [w for w in self._workers.values() if w.process.is_alive()]
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        deadline = time.monotonic() + self._settings.send_deadline_s + 15.0
        for worker in running:
            worker.process.join(max(deadline - time.monotonic(), 0.1))
            if worker.process.is_alive():
                logger.error("a worker did not stop; killing it", extra={"worker": worker.index})
                worker.process.kill()
                worker.process.join()
        for worker in self._workers.values():
            worker.ready.close()


def serve_worker(settings: Settings, index: int, ready: Connection, supervisor: int) -> None:
    """A worker process's body: the service on the supervisor's ports; ``ready`` hears from it
    once it serves. It stops itself (as on SIGTERM) if its supervisor goes away."""
    from ._logging import configure_logging
    from ._serving import serve_process

    configure_logging(settings.log_level, settings.log_format)
    threading.Thread(
        target=_stop_when_orphaned, args=(supervisor,), name="msgbridge-orphan-watch", daemon=True
    ).start()

    def serving(built: object) -> None:
        with contextlib.suppress(OSError):
            ready.send(index)
            ready.close()

    raise SystemExit(serve_process(settings, shared_ports=True, on_serving=serving))


def _stop_when_orphaned(supervisor: int) -> None:
    while os.getppid() == supervisor:
        time.sleep(_PARENT_CHECK_S)
    logger.warning("the supervisor is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)
