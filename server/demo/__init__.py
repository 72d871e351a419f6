"""The demo and test double: a fake messaging provider, and what ``make run`` wires to it.

The fake provider is an HTTP server that records what it receives and answers as scripted; tests,
benchmarks and the ``make run`` demo integration send to it. Run it alone with
``python -m server.demo --host 127.0.0.1 --port 8090``. :func:`start_demo` is what
``msgbridge serve --demo`` starts beside the service.
"""

from ._fake_provider import (
    Answer,
    FakeProviderState,
    FetchedFile,
    Part,
    ReceivedRequest,
    RunningFakeProvider,
    build_fake_provider,
    main,
    start_fake_provider,
)
from ._wiring import DEMO_DEFINITION, start_demo

__all__ = [
    "DEMO_DEFINITION",
    "Answer",
    "FakeProviderState",
    "FetchedFile",
    "Part",
    "ReceivedRequest",
    "RunningFakeProvider",
    "build_fake_provider",
    "main",
    "start_demo",
    "start_fake_provider",
]
