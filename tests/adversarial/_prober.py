"""``python -m tests.adversarial._prober TARGET TOKEN``: the unrelated gRPC call, timed.

Runs in a process of its own so that the load generator's CPU use cannot inflate what it
measures. A thread calls ``GetIntegration`` in a loop (one call at a time, a short pause between
calls); each line read on stdin is a mark, answered on stdout with the longest latency since the
previous mark in milliseconds — a call still running at the mark counts with its time so far, so
that a call stalled past the end of a case is not missed — and how many calls failed.
"""

from __future__ import annotations

import sys
import threading
import time

import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

__all__ = ["main"]

_PAUSE_S = 0.02
_CALL_TIMEOUT_S = 30.0
# Reconnect quickly after the suite restarts a server it had to kill.
_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500))


class _Window:
    """The longest latency and the failures since the last mark, and the call in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.longest_s = 0.0
        self.failures = 0
        self.calls = 0
        self.started: float | None = None

    def mark(self) -> str:
        with self.lock:
            longest = self.longest_s
            if self.started is not None:
                longest = max(longest, time.monotonic() - self.started)
            line = f"{longest * 1000:.1f} {self.calls} {self.failures}"
            self.longest_s, self.failures, self.calls = 0.0, 0, 0
            return line


def _loop(target: str, token: str, window: _Window) -> None:
    channel = grpc.insecure_channel(target, options=_OPTIONS)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    request = gateway_pb2.GetIntegrationRequest(integration_id="demo")
    metadata = (("authorization", f"Bearer {token}"),)
    while True:
        with window.lock:
            window.started = time.monotonic()
        failed = False
        try:
            stub.GetIntegration(request, metadata=metadata, timeout=_CALL_TIMEOUT_S)
        except grpc.RpcError:
            failed = True
        with window.lock:
            assert window.started is not None
            window.longest_s = max(window.longest_s, time.monotonic() - window.started)
            window.started = None
            window.calls += 1
            window.failures += failed
        time.sleep(_PAUSE_S)


def main(argv: list[str]) -> int:
    target, token = argv
    window = _Window()
    threading.Thread(target=_loop, args=(target, token, window), daemon=True).start()
    for _ in sys.stdin:
        print(window.mark(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
