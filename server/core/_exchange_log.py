"""The provider exchange log's writer: exchanges are kept in memory for a moment and written to
the store in batches, so that logging a send costs the send path an append, not a store write
(docs/operations.md, "Provider exchanges").

An exchange is kept as it was made — its request, its answer (each body cut to what the record
can hold) and the mask of its secrets — and built into its record, masked (``core/_exchanges.py``),
when its batch is written: a few dozen built in a row cost half what each costs built on its own
between two sends, and the send path pays only the append. Nothing unmasked leaves this module:
a batch is masked before it is written, and a message's exchanges are read only after its
waiting ones are written.

A batch is written every ``flush_interval_s`` seconds, at once when ``max_pending`` are waiting,
before a message's exchanges are read (:meth:`ExchangeLog.of_message`) and at :meth:`aclose`. A
batch the store refuses is dropped and logged (its size only): the log is for reading, and a send
never fails for it. A log made with ``enabled=False`` keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final, NamedTuple

from ..engine import RenderedRequest
from ..errors import GatewayError
from ..oauth import ExchangeHook
from ..outbound import OutboundClient, OutboundError, ProviderResponse
from ..security.secrets import SecretMask
from ..store import ExchangeKind, InstallationRecord, ProviderExchange, Store
from ._exchanges import BODY_CAP, exchange_of, token_answer_values
from ._installations import InstallationDirectory

__all__ = ["ExchangeLog", "send_logged", "token_exchanges"]

logger = logging.getLogger(__name__)

#: How many kept exchanges are built in a row before the event loop serves others.
_BUILD_CHUNK: Final = 64


class _Unbuilt(NamedTuple):
    """An exchange as it was made (bodies cut to what its record can hold), built and masked
    when its batch is written."""

    mask: SecretMask
    installation: InstallationRecord
    kind: ExchangeKind
    request: RenderedRequest
    answer: ProviderResponse | OutboundError
    started_at: datetime
    duration_s: float
    message_id: str | None

    def build(self) -> ProviderExchange:
        return exchange_of(
            self.mask,
            installation=self.installation,
            kind=self.kind,
            message_id=self.message_id,
            request=self.request,
            answer=self.answer,
            started_at=self.started_at,
            duration_s=self.duration_s,
        )


def _built(item: ProviderExchange | _Unbuilt) -> ProviderExchange:
    return item.build() if isinstance(item, _Unbuilt) else item


class ExchangeLog:
    """Batches :meth:`record`\\ ed exchanges into the store; ``start`` / ``aclose``."""

    def __init__(
        self,
        store: Store,
        *,
        enabled: bool = True,
        flush_interval_s: float = 0.5,
        max_pending: int = 512,
    ) -> None:
        self._store = store
        self.enabled = enabled
        self._interval_s = flush_interval_s
        self._max_pending = max_pending
        self._pending: list[ProviderExchange | _Unbuilt] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, exchange: ProviderExchange | _Unbuilt) -> None:
        """Keep ``exchange`` (written with the next batch)."""
        if not self.enabled:
            return
        self._pending.append(exchange)
        if len(self._pending) >= self._max_pending:
            self._wake.set()

    def keep(
        self,
        mask: SecretMask,
        installation: InstallationRecord,
        kind: ExchangeKind,
        request: RenderedRequest,
        answer: ProviderResponse | OutboundError,
        timing: tuple[datetime, float],
        message_id: str | None = None,
    ) -> None:
        """Keep the exchange of ``request`` and ``answer``, to be masked with ``mask`` when it
        is written (``core/_exchanges.py``); ``timing``: when it started and how long it took,
        seconds."""
        if self.enabled:
            # What the record can hold of each body, and one byte more to tell that it was cut
            # (``core/_exchanges.py`` masks a window this long before cutting): a provider's
            # megabyte is not kept waiting for its batch.
            window = BODY_CAP + 4 * mask.longest + 1
            if request.body is not None and len(request.body) > window:
                request = replace(request, body=request.body[:window])
            if isinstance(answer, ProviderResponse) and len(answer.body) > window:
                answer = replace(answer, body=answer.body[:window], truncated=True)
            started_at, duration_s = timing
            self.record(
                _Unbuilt(
                    mask, installation, kind, request, answer, started_at, duration_s, message_id
                )
            )

    async def flush(self) -> None:
        """Write what is waiting now."""
        async with self._lock:
            pending, self._pending = self._pending, []
            if not pending:
                return
            batch: list[ProviderExchange] = []
            try:
                for start in range(0, len(pending), _BUILD_CHUNK):
                    if start:
                        await asyncio.sleep(0)  # a large batch does not hold the loop long
                    batch += map(_built, pending[start : start + _BUILD_CHUNK])
            except asyncio.CancelledError:  # closing: what is not written yet waits again
                self._pending[:0] = [*batch, *pending[len(batch) :]]
                raise
            try:
                # Shielded: a close that cancels the loop mid-write does not lose the batch.
                await asyncio.shield(self._store.record_exchanges(batch))
            except Exception:
                logger.exception("provider exchanges not kept", extra={"count": len(batch)})

    async def of_message(self, message_id: str) -> tuple[ProviderExchange, ...]:
        """The exchanges made for ``message_id`` (this process's waiting ones written first)."""
        if self._pending:
            await self.flush()
        return await self._store.list_exchanges(message_id)

    async def start(self) -> None:
        """Write batches in the background."""
        if self._task is not None:
            raise RuntimeError("ExchangeLog already started")

        async def loop() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)
                self._wake.clear()
                await self.flush()

        self._task = asyncio.create_task(loop(), name="msgbridge-exchange-log")

    async def aclose(self) -> None:
        """Stop, writing what is waiting (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


async def send_logged(
    outbound: OutboundClient,
    request: RenderedRequest,
    *,
    timeout: float,  # noqa: ASYNC109 (OutboundClient.send's deadline)
    integration: str,
    log: ExchangeLog | None,
    mask: Callable[[], SecretMask],
    installation: InstallationRecord,
    kind: ExchangeKind,
    message_id: str | None = None,
) -> ProviderResponse:
    """``outbound.send(request)``, its exchange kept in ``log`` (when there is one, and it is
    enabled) masked with ``mask()``; raises what :meth:`OutboundClient.send` raises."""
    if log is None or not log.enabled:
        return await outbound.send(request, timeout=timeout, integration=integration)
    started_at, started = datetime.now(UTC), time.perf_counter()
    answer: ProviderResponse | OutboundError
    try:
        answer = await outbound.send(request, timeout=timeout, integration=integration)
    except OutboundError as exc:
        answer = exc
    duration_s = (
        answer.elapsed_s if isinstance(answer, ProviderResponse) else time.perf_counter() - started
    )
    log.keep(mask(), installation, kind, request, answer, (started_at, duration_s), message_id)
    if isinstance(answer, OutboundError):
        raise answer
    return answer


def token_exchanges(log: ExchangeLog, installations: InstallationDirectory) -> ExchangeHook:
    """The OAuth2 transport's hook (server/oauth/_transport.py) keeping each token request in
    ``log``: masked with the installation's secrets, the request's own (client secret, code,
    refresh token) and the tokens its answer carries."""

    async def keep(
        installation_id: str,
        mask: SecretMask,
        request: RenderedRequest,
        answer: ProviderResponse | OutboundError,
        started_at: datetime,
        duration_s: float,
    ) -> None:
        if not log.enabled:
            return
        try:
            installation = await installations.get(installation_id)
        except GatewayError:
            return  # gone meanwhile: nothing to keep it under
        if isinstance(answer, ProviderResponse):
            mask = mask.with_values(token_answer_values(answer.body))
        kind = ExchangeKind.OAUTH_TOKEN
        log.keep(mask, installation, kind, request, answer, (started_at, duration_s))

    return keep
