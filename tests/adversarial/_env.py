"""The processes a run needs, started once, and the ways cases reach them.

- ``msgbridge serve`` (:attr:`Env.core`): SQLite in a temporary data dir, the sidecar
  in-process, API tokens from a file (full, read and ingest), ``--outbound-allow 127.0.0.1``,
  short webhook and provider timeouts so that slow cases end in seconds;
- ``msgbridge sidecar`` (:attr:`Env.sidecar`) in front of it, with the ingest token;
- the fake provider (the ``demo`` integration's) and the hostile provider (``hostile`` and
  ``dashes``);
- on demand, a second ``msgbridge serve`` whose tokens are scoped to organisations
  (:meth:`Env.scoped`): on a build that cannot read such token lines it does not start, and only
  the cases that need it fail.

Organisation ``acme`` holds the installations the cases use; ``alive`` holds the one the check
after each case posts its good webhook to, so that what cases leave behind never gets in its way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf.message import Message

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from tests.reliability._processes import (
    ROOT,
    FakeProviderProcess,
    ReplicaProcess,
    SidecarProcess,
    write_secret_key,
)

from ._hostile import HostileProvider

__all__ = [
    "ACME_NUMBER",
    "ALIVE_NUMBER",
    "DASHES_NUMBER",
    "GLOBEX_NUMBER",
    "HOSTILE_NUMBER",
    "Api",
    "Env",
    "RpcResult",
    "ScopedEnv",
    "SidecarWithToken",
    "Tokens",
    "cli",
    "demo_definition",
    "enable",
    "message_webhook",
    "register",
    "send_request",
    "webhook_path",
]

ACME_NUMBER = "+15550001111"
HOSTILE_NUMBER = "+15550002222"
DASHES_NUMBER = "+15550003333"
ALIVE_NUMBER = "+15550009999"
GLOBEX_NUMBER = "+15550004444"

# Short enough that the slow cases end in seconds, long enough for a loaded 2-core machine.
SERVE_SETTINGS = (
    "--webhook-timeout-s", "3",
    "--provider-timeout-s", "2",
    "--send-deadline-s", "8",
    "--send-max-attempts", "1",
)  # fmt: skip
_RPC_TIMEOUT_S = 15.0
_ALIVE_WAIT_S = 10.0


def _token() -> str:
    # Never starting with "-", which a command line would read as an option.
    return "t" + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Tokens:
    full: str = field(default_factory=_token)
    read: str = field(default_factory=_token)
    ingest: str = field(default_factory=_token)


@dataclass(frozen=True)
class RpcResult:
    """A call's outcome: the code's name (``"OK"``, ``"PERMISSION_DENIED"`` …), the details, the
    trailing metadata's values (the rich status included) and the reply when OK."""

    code: str
    details: str
    trailers: tuple[tuple[str, str | bytes], ...] = ()
    reply: Any = None

    def text(self) -> str:
        """Everything the caller was told, as text (for looking for what must not be there)."""
        values = [
            self.details,
            *(v if isinstance(v, str) else v.decode("latin-1") for _, v in self.trailers),
        ]
        if self.reply is not None:
            values.append(str(self.reply))
        return "\n".join(values)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not yet reaped, or no longer there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


async def _collect(call: Any, responses: int, wait_s: float) -> RpcResult:
    """The responses of a server stream until ``responses`` came, it failed, or ``wait_s``."""
    got: list[Any] = []
    try:
        async with asyncio.timeout(wait_s):
            async for response in call:
                got.append(response)
                if len(got) >= responses:
                    break
    except TimeoutError:
        pass
    except grpc.aio.AioRpcError as exc:
        return _failed(exc)
    finally:
        call.cancel()
    return RpcResult("OK", "", reply=got)


def _failed(exc: grpc.aio.AioRpcError) -> RpcResult:
    trailers = tuple((k, v) for k, v in (exc.trailing_metadata() or ()))
    return RpcResult(exc.code().name, exc.details() or "", trailers)


@dataclass(eq=False, kw_only=True)
class SidecarWithToken(SidecarProcess):
    """``msgbridge sidecar`` that authenticates to the core with the ingest token."""

    core_token: str
    timeout_s: float = 3.0

    def argv(self) -> Sequence[str]:
        return [
            *super().argv(), f"--core-token={self.core_token}", "--timeout", str(self.timeout_s),
        ]  # fmt: skip


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def demo_definition(integration_id: str = "demo", **changes: Any) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((ROOT / "integrations" / "demo.json").read_text())
    definition["id"] = integration_id
    definition["name"] = f"{integration_id} (adversarial)"
    definition.update(changes)
    return definition


def send_request(
    org: str, number: str, text: str, *, to: str = "+15557654321"
) -> gateway_pb2.SendMessageRequest:
    """A SendMessage from ``number`` of ``org`` (the hostile provider reads ``text``)."""
    request = gateway_pb2.SendMessageRequest(org_id=org, to=to, text=text)
    setattr(request, "from", number)  # `from` is a keyword
    return request


def message_webhook(to: str, text: str, sender: str = "+15557770000") -> bytes:
    """A good inbound-message webhook of the demo definition."""
    return json.dumps(
        {"method": "message", "params": {"from": sender, "to": to, "content": text}}
    ).encode()


class Api:
    """gRPC calls to one ``msgbridge serve`` with a given token."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500),
            ],
        )
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)

    async def call(
        self, method: str, request: Message, token: str | None, deadline_s: float = _RPC_TIMEOUT_S
    ) -> RpcResult:
        call = getattr(self.stub, method)(request, metadata=_metadata(token), timeout=deadline_s)
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            return _failed(exc)
        return RpcResult("OK", "", reply=reply)

    async def stream(
        self,
        request: gateway_pb2.StreamEventsRequest,
        token: str | None,
        *,
        responses: int = 1,
        wait_s: float = 5.0,
    ) -> RpcResult:
        """StreamEvents until ``responses`` responses came (OK), the stream failed, or
        ``wait_s`` passed (``"OK"`` too: nothing refused it)."""
        call = self.stub.StreamEvents(request, metadata=_metadata(token))
        return await _collect(call, responses, wait_s)

    async def raw(self, method: str, payload: bytes, token: str | None) -> RpcResult:
        """``payload`` sent as the request's bytes as they are (no serializer)."""
        callable_ = self.channel.unary_unary(method)
        try:
            reply = await callable_(payload, metadata=_metadata(token), timeout=_RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            return _failed(exc)
        return RpcResult("OK", "", reply=reply)

    async def raw_stream(self, method: str, payload: bytes, token: str | None) -> RpcResult:
        """A server-streaming call with raw request bytes, judged as :meth:`stream` judges."""
        call = self.channel.unary_stream(method)(payload, metadata=_metadata(token))
        return await _collect(call, 1, 3.0)

    async def close(self) -> None:
        await self.channel.close()


async def cli(
    target: str, token: str | None, *args: str, limit_s: float = 60.0
) -> tuple[int, str, str, float]:
    """``msgbridge ARGS --target T [--token X]``: exit code, stdout, stderr and seconds taken."""
    extra = ["--target", target, *([f"--token={token}"] if token else [])]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", *args, *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MSGBRIDGE_TARGET": "", "MSGBRIDGE_TOKEN": ""},
    )  # fmt: skip
    try:
        async with asyncio.timeout(limit_s):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode(), time.monotonic() - started


async def enable(
    api: Api, token: str, org: str, integration: str, number: str, properties: dict[str, str]
) -> gateway_pb2.Installation:
    result = await api.call(
        "EnableIntegration",
        gateway_pb2.EnableIntegrationRequest(
            org_id=org,
            integration_id=integration,
            properties=properties,
            numbers=[gateway_pb2.NumberAssignment(number=number, users=["101"])],
        ),
        token,
    )
    if result.code != "OK":
        raise RuntimeError(
            f"EnableIntegration {integration} for {org}: {result.code} {result.details}"
        )
    installation: gateway_pb2.Installation = result.reply
    return installation


async def register(api: Api, token: str, definition: dict[str, Any]) -> None:
    result = await api.call(
        "RegisterIntegration",
        gateway_pb2.RegisterIntegrationRequest(definition_json=json.dumps(definition)),
        token,
    )
    if result.code != "OK":
        raise RuntimeError(
            f"RegisterIntegration {definition['id']}: {result.code} {result.details}"
        )


def webhook_path(installation: gateway_pb2.Installation) -> str:
    return "/webhooks/" + installation.webhook_url.split("/webhooks/", 1)[1]


@dataclass
class ScopedEnv:
    """The server whose tokens are scoped to organisations, and what it holds."""

    core: ReplicaProcess
    api: Api
    full: str  # unscoped
    acme_read: str  # read, orgs=acme
    acme_full: str  # full, orgs=acme
    two_orgs_read: str  # read, orgs=acme,globex
    installations: dict[str, gateway_pb2.Installation]
    message_ids: dict[str, str]
    unmatched_id: str


class Env:
    """Everything a case may use; built by :meth:`start`, torn down by :meth:`stop`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.tokens = Tokens()
        self.secret = "sk-live-" + secrets.token_hex(12)  # the hostile installation's API key
        self.fake = FakeProviderProcess(name="fake-provider")
        self.hostile = HostileProvider()
        key = write_secret_key(tmp / "secret.key")
        tokens_file = tmp / "tokens.txt"
        tokens_file.write_text(
            f"full {self.tokens.full} admin\n"
            f"read sha256:{sha256_hex(self.tokens.read)} reader\n"
            f"ingest {self.tokens.ingest} sidecar\n"
        )
        tokens_file.chmod(0o600)
        self.core = ReplicaProcess(
            name="serve",
            database_url=f"sqlite:///{self.data_dir / 'msgbridge.db'}",
            data_dir=self.data_dir,
            secret_key_file=key,
            extra=("--api-tokens-file", str(tokens_file), *SERVE_SETTINGS),
        )
        self.sidecar: SidecarWithToken | None = None
        self.api: Api | None = None
        self.http: aiohttp.ClientSession | None = None
        self.installations: dict[str, gateway_pb2.Installation] = {}
        self.alive_cursor = 0
        #: What cases set up once and share (the large events of issue/4, say).
        self.memo: dict[str, int] = {}
        self._scoped: ScopedEnv | str | None = None
        #: Whether the case running is judged on the scoped-token server (set by the runner).
        self.judging_scoped = False
        self._scoped_lock = asyncio.Lock()

    # --- setup ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir()
        await self.fake.start()
        await self.hostile.start()
        await self.core.start()
        self.api = Api(self.core.target)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        full = self.tokens.full
        fake_server = self.fake.url.removeprefix("http://")
        await register(self.api, full, demo_definition())
        await register(self.api, full, demo_definition("hostile"))
        dashes = demo_definition("dashes")
        dashes["API"]["SendMessage"]["response_map"] = {
            "result": "$messageid$-$status$-$error$-$messageid$!"
        }
        await register(self.api, full, dashes)
        self.installations = {
            "acme": await enable(
                self.api, full, "acme", "demo", ACME_NUMBER,
                {"Server": fake_server, "API key": "demo-key-0123456789"},
            ),
            "alive": await enable(
                self.api, full, "alive", "demo", ALIVE_NUMBER,
                {"Server": fake_server, "API key": "demo-key-0123456789"},
            ),
            "hostile": await enable(
                self.api, full, "acme", "hostile", HOSTILE_NUMBER,
                {"Server": self.hostile.url, "API key": self.secret},
            ),
            "dashes": await enable(
                self.api, full, "acme", "dashes", DASHES_NUMBER,
                {"Server": self.hostile.url, "API key": self.secret},
            ),
        }  # fmt: skip
        self.sidecar = SidecarWithToken(
            name="sidecar", core=self.core.target, core_token=self.tokens.ingest
        )
        await self.sidecar.start()

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.close()
        if self.http is not None:
            await self.http.close()
        scoped = self._scoped
        processes = [self.sidecar, self.core, self.fake]
        if isinstance(scoped, ScopedEnv):
            await scoped.api.close()
            processes.append(scoped.core)
        for process in processes:
            if process is not None and process.process is not None:
                await process.stop()
        await self.hostile.stop()

    def server_pids(self) -> list[int]:
        """The processes of the server the current case is judged on (:attr:`judging_scoped`):
        ``msgbridge serve`` and the sidecar in front of it, or the scoped-token server. The
        providers are the suite's own and do not count."""
        if self.judging_scoped and isinstance(self._scoped, ScopedEnv):
            processes: list[ReplicaProcess | SidecarProcess] = [self._scoped.core]
        else:
            processes = [p for p in (self.core, self.sidecar) if p is not None]
        return [p.pid for p in processes if p.running and p.pid is not None]

    # --- what cases use -------------------------------------------------------------------------

    @property
    def gateway(self) -> Api:
        assert self.api is not None
        return self.api

    def core_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.core.http_port}{path}"

    def sidecar_url(self, path: str = "") -> str:
        assert self.sidecar is not None
        return f"{self.sidecar.url}{path}"

    def path(self, installation: str = "acme") -> str:
        return webhook_path(self.installations[installation])

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        method: str = "POST",
        limit_s: float = 30.0,
    ) -> int:
        """The status of one request (aiohttp adds Content-Length and nothing it is not told)."""
        assert self.http is not None
        async with self.http.request(
            method, url, data=body, headers=headers or {},
            timeout=aiohttp.ClientTimeout(total=limit_s), auto_decompress=False,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding"),
        ) as response:  # fmt: skip
            await response.read()
            return response.status

    def _servers(self) -> list[ReplicaProcess | SidecarProcess]:
        processes: list[ReplicaProcess | SidecarProcess] = [self.core]
        if self.sidecar is not None:
            processes.append(self.sidecar)
        if isinstance(self._scoped, ScopedEnv):
            processes.append(self._scoped.core)
        return processes

    async def kill_servers(self) -> None:
        """SIGKILL every server: after a case that stalled one, the run goes on with new ones
        (:meth:`restart_exited` starts them)."""
        for process in self._servers():
            process.kill()
        for process in self._servers():
            if process.process is not None:
                await process.process.wait()

    async def restart_exited(self) -> list[str]:
        """Start again every server that exited (killed by the memory guard, or crashed); what
        was restarted."""
        restarted = []
        for process in self._servers():
            if process.process is None:
                continue
            if _gone(process.process.pid):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await process.process.wait()
            if not process.running:
                restarted.append(f"{process.name} had exited ({process.process.returncode})")
                await process.wait()
                await process.start()
                if process is self.core and self.api is not None:
                    # A new server reads every stored definition on its first listing, on its
                    # event loop (0.3 s for the suite's large ones): paid here, not by the next
                    # case.
                    request = gateway_pb2.ListIntegrationsRequest(page_size=1)
                    await self.api.call("ListIntegrations", request, self.tokens.read)
        return restarted

    async def alive(self) -> tuple[list[str], str | None]:
        """Restart what died; then a good webhook through each sidecar (in-process and separate)
        must become an event. What was restarted, and None or why a webhook did not."""
        restarted = await self.restart_exited()
        markers = {}
        for base in (self.core_url, self.sidecar_url):
            marker = f"alive {uuid.uuid4()}"
            url = base(self.path("alive"))
            try:
                status = await self.post(
                    url, message_webhook(ALIVE_NUMBER, marker), {"Content-Type": "application/json"}
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                return restarted, f"good webhook to {url} failed: {type(exc).__name__}"
            if status != 200:
                return restarted, f"good webhook to {url} answered {status}"
            markers[marker] = url
        deadline = time.monotonic() + _ALIVE_WAIT_S
        while time.monotonic() < deadline:
            result = await self.gateway.call(
                "ListEvents",
                gateway_pb2.ListEventsRequest(
                    org_id="alive", after_cursor=self.alive_cursor, page_size=100
                ),
                self.tokens.read,
            )
            if result.code != "OK":
                return restarted, f"ListEvents after the good webhooks: {result.code}"
            for event in result.reply.events:
                self.alive_cursor = max(self.alive_cursor, event.cursor)
                markers.pop(event.text, None)
            if not markers:
                return restarted, None
            await asyncio.sleep(0.05)
        return restarted, f"the good webhook to {', '.join(markers.values())} became no event"

    async def scoped(self) -> ScopedEnv:
        """The server with organisation-scoped tokens (started on first use)."""
        async with self._scoped_lock:
            if self._scoped is None:
                try:
                    self._scoped = await self._start_scoped()
                except (RuntimeError, TimeoutError) as exc:
                    self._scoped = f"the server with orgs= token lines did not start: {exc}"
            if isinstance(self._scoped, str):
                raise RuntimeError(self._scoped)
            return self._scoped

    async def _start_scoped(self) -> ScopedEnv:
        tmp = self.tmp / "scoped"
        full, acme_read, acme_full, two = _token(), _token(), _token(), _token()
        tokens_file = tmp / "tokens.txt"
        tmp.mkdir()
        # The forms of the token line (docs: the orgs= field may come anywhere after the token).
        tokens_file.write_text(
            f"full {full} admin\n"
            f"read sha256:{sha256_hex(acme_read)} acme-reader orgs=acme\n"
            f"full sha256:{sha256_hex(acme_full)} orgs=acme acme-admin\n"
            f"read {two} orgs=acme,globex\n"
        )
        tokens_file.chmod(0o600)
        core = ReplicaProcess(
            name="serve-scoped",
            database_url=f"sqlite:///{tmp / 'data' / 'msgbridge.db'}",
            data_dir=tmp / "data",
            secret_key_file=write_secret_key(tmp / "secret.key"),
            extra=("--api-tokens-file", str(tokens_file), *SERVE_SETTINGS),
        )
        (tmp / "data").mkdir()
        try:
            await core.start()
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            last = lines[-1] if lines else str(exc)
            raise RuntimeError(last.replace(str(tokens_file), "tokens.txt")) from None
        api = Api(core.target)
        fake_server = self.fake.url.removeprefix("http://")
        await register(api, full, demo_definition())
        # Enabled for another organisation and deleted by the cases (refused, when scoping holds).
        await register(api, full, demo_definition("spare"))
        installations = {}
        message_ids = {}
        for org, number in (
            ("acme", ACME_NUMBER),
            ("globex", GLOBEX_NUMBER),
            ("initech", ALIVE_NUMBER),
        ):
            installations[org] = await enable(
                api,
                full,
                org,
                "demo",
                number,
                {"Server": fake_server, "API key": "k-0123456789abcdef"},
            )
            status = await self.post(
                f"http://127.0.0.1:{core.http_port}{webhook_path(installations[org])}",
                message_webhook(number, f"inbound for {org}"),
                {"Content-Type": "application/json"},
            )
            if status != 200:
                raise RuntimeError(f"webhook for {org}: {status}")
            sent = await api.call("SendMessage", send_request(org, number, "hi"), full)
            if sent.code != "OK":
                raise RuntimeError(f"send for {org}: {sent.code} {sent.details}")
            message_ids[org] = sent.reply.message_id
        await self.post(
            f"http://127.0.0.1:{core.http_port}/webhooks/demo",
            b'{"nothing": "matches"}',
            {"Content-Type": "application/json"},
        )
        listed = await api.call(
            "ListUnmatchedWebhooks", gateway_pb2.ListUnmatchedWebhooksRequest(), full
        )
        unmatched_id = (
            listed.reply.webhooks[0].id if listed.code == "OK" and listed.reply.webhooks else ""
        )
        return ScopedEnv(
            core=core, api=api, full=full, acme_read=acme_read, acme_full=acme_full,
            two_orgs_read=two, installations=installations, message_ids=message_ids,
            unmatched_id=unmatched_id,
        )  # fmt: skip
