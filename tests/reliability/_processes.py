"""Real processes: ``msgbridge serve`` replicas, ``msgbridge sidecar`` and the fake provider.

Each is started with ``sys.executable`` from the project root, on 127.0.0.1. A replica or a
sidecar is started on port 0 the first time and on the same ports after a kill, so that what
points at it (a sidecar's ``--core``, a client's channel) finds it again, as behind a fixed
address. Their JSON log lines (stderr) are read for the ports and kept (the last few thousand).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ROOT",
    "FakeProviderProcess",
    "ManagedProcess",
    "MotoProcess",
    "RecordingProviderProcess",
    "ReplicaProcess",
    "SidecarProcess",
    "rss_bytes",
    "write_secret_key",
]

ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 60.0


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (``VmRSS`` in ``/proc``), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def write_secret_key(path: Path) -> Path:
    """The key file the replicas share (one base64 AES-256 key, mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


@dataclass(eq=False, kw_only=True)
class ManagedProcess:
    """A process that can be started, SIGKILLed, started again and stopped.

    Subclasses give the command line (:meth:`argv`) and say when it is ready
    (:meth:`_on_line`, called with each log line until it returns True).
    """

    name: str
    # Added to the run's environment (e.g. the object store's credentials).
    env: Mapping[str, str] = field(default_factory=dict)
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=5000))
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    _drain: asyncio.Task[None] | None = None

    def argv(self) -> Sequence[str]:
        raise NotImplementedError

    def _on_line(self, entry: dict[str, object]) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def rss(self) -> int | None:
        return rss_bytes(self.process.pid) if self.running and self.process is not None else None

    async def start(self) -> None:
        """Start and return once it serves; RuntimeError (with its log) when it exits first."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.process = await asyncio.create_subprocess_exec(
            *self.argv(),
            cwd=ROOT,
            env={**os.environ, **self.env} if self.env else None,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.starts += 1
        stream = self.process.stdout
        assert stream is not None
        async with asyncio.timeout(_START_TIMEOUT_S):
            while True:
                line = (await stream.readline()).decode(errors="replace")
                if not line:
                    await self.process.wait()
                    raise RuntimeError(
                        f"{self.name} exited ({self.process.returncode}) before serving:\n"
                        + "".join(list(self.log)[-40:])
                    )
                self.log.append(line)
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"text": line.strip()}
                if isinstance(entry, dict) and self._on_line(entry):
                    break
        self._drain = asyncio.create_task(self._read_rest(self.process))

    async def _read_rest(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            self.log.append(raw.decode(errors="replace"))
        await process.wait()

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything (what a crash or an OOM kill does)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        async with asyncio.timeout(timeout_s):
            code = await self.process.wait()
            if self._drain is not None:
                await self._drain
        return code

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; its exit code."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return await self.wait(timeout_s)
        except TimeoutError:
            self.kill()
            return await self.wait(10.0)

    def entries(self) -> list[dict[str, object]]:
        """The kept log lines that are JSON objects, oldest first."""
        found = []
        for line in self.log:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found


@dataclass(eq=False, kw_only=True)
class ReplicaProcess(ManagedProcess):
    """``msgbridge serve`` on PostgreSQL. Its ports are kept across restarts."""

    database_url: str
    data_dir: Path
    secret_key_file: Path
    extra: Sequence[str] = ()
    grpc_port: int = 0
    http_port: int = 0
    _seen: set[str] = field(default_factory=set)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def argv(self) -> Sequence[str]:
        self._seen = set()
        return [
            sys.executable, "-m", "client.cli", "serve",
            "--database-url", self.database_url,
            "--grpc-listen", f"127.0.0.1:{self.grpc_port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--outbound-allow", "127.0.0.1",
            "--data-dir", str(self.data_dir),
            "--secret-key-file", str(self.secret_key_file),
            *self.extra,
        ]  # fmt: skip

    def _on_line(self, entry: dict[str, object]) -> bool:
        message, port = entry.get("msg"), entry.get("port")
        if message == "webhook sidecar serving" and isinstance(port, int):
            self.http_port = port
            self._seen.add("http")
        if message == "gRPC API serving" and isinstance(port, int):
            self.grpc_port = port
            self._seen.add("grpc")
        return "grpc" in self._seen and ("http" in self._seen or "--no-sidecar" in self.extra)


@dataclass(eq=False, kw_only=True)
class SidecarProcess(ManagedProcess):
    """``msgbridge sidecar --core`` in front of one replica. Its port is kept across restarts."""

    core: str
    http_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def argv(self) -> Sequence[str]:
        return [
            sys.executable, "-m", "client.cli", "sidecar",
            "--core", self.core,
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--public-url", "http://127.0.0.1:0",
            "--core-timeout", "10",
        ]  # fmt: skip

    def _on_line(self, entry: dict[str, object]) -> bool:
        port = entry.get("port")
        if entry.get("msg") == "webhook sidecar serving" and isinstance(port, int):
            self.http_port = port
            return True
        return False


@dataclass(eq=False, kw_only=True)
class FakeProviderProcess(ManagedProcess):
    """``python -m server.demo``: answers sends 200 and records them (read over HTTP)."""

    max_recorded: int = 100_000
    url: str = ""

    def argv(self) -> Sequence[str]:
        return [
            sys.executable, "-m", "server.demo",
            "--port", "0", "--max-recorded", str(self.max_recorded),
        ]  # fmt: skip

    def _on_line(self, entry: dict[str, object]) -> bool:
        text = entry.get("text")
        if isinstance(text, str) and text.startswith("fake provider listening on "):
            self.url = text.rsplit(" ", 1)[1]
            return True
        return False


@dataclass(eq=False, kw_only=True)
class RecordingProviderProcess(FakeProviderProcess):
    """The fake provider that also appends each send to ``record`` before answering it
    (:mod:`tests.reliability._recording_provider`), answering after ``delay_s``. Started on port
    0 the first time and on the same port after a kill, so that the integration's URL stays
    right; while it is down, sends fail to connect."""

    record: Path
    delay_s: float = 0.0
    port: int = 0

    def argv(self) -> Sequence[str]:
        return [
            sys.executable, "-m", "tests.reliability._recording_provider",
            "--port", str(self.port), "--record", str(self.record),
            "--delay-s", str(self.delay_s), "--max-recorded", str(self.max_recorded),
        ]  # fmt: skip

    def _on_line(self, entry: dict[str, object]) -> bool:
        if not super()._on_line(entry):
            return False
        self.port = int(self.url.rsplit(":", 1)[1])
        return True


@dataclass(eq=False, kw_only=True)
class MotoProcess(ManagedProcess):
    """moto's S3 server with one bucket (:mod:`tests.reliability._moto_server`), the object store
    the replicas share."""

    url: str = ""
    bucket: str = ""

    def argv(self) -> Sequence[str]:
        return [sys.executable, "-m", "tests.reliability._moto_server"]

    def _on_line(self, entry: dict[str, object]) -> bool:
        url, bucket = entry.get("url"), entry.get("bucket")
        if (
            entry.get("msg") == "moto s3 serving"
            and isinstance(url, str)
            and isinstance(bucket, str)
        ):
            self.url, self.bucket = url, bucket
            return True
        return False
