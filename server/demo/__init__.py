"""The demo and test double: a fake messaging provider, and what ``make run`` wires to it.

The fake provider is an HTTP server that records what it receives and answers as scripted; tests,
benchmarks and the ``make run`` demo integration send to it. Run it alone with
``python -m server.demo --host 127.0.0.1 --port 8090``.
"""

from ._fake_provider import (
    Answer,
    FakeProviderState,
    Part,
    ReceivedRequest,
    RunningFakeProvider,
    build_fake_provider,
    main,
    start_fake_provider,
)

__all__ = [
    "Answer",
    "FakeProviderState",
    "Part",
    "ReceivedRequest",
    "RunningFakeProvider",
    "build_fake_provider",
    "main",
    "start_fake_provider",
]
