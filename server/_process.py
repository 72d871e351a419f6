"""What every msgbridge process does around its event loop (``msgbridge serve``, each of its
workers, ``msgbridge sidecar``): traces (off unless ``OTEL_*`` asks), two malloc arenas, the
main coroutine on the configured loop, the spans still waiting exported at the end, and an
exit status with one line on stderr for what it could not do."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from ._event_loop import run_on
from ._memory import limit_malloc_arenas
from .tracing import TracingError, configure_tracing

__all__ = ["run_process"]


def run_process(
    command: str,
    event_loop: str,
    main: Callable[[], Coroutine[Any, Any, object]],
    *,
    refusals: tuple[type[Exception], ...] = (),
    failures: tuple[type[Exception], ...] = (OSError,),
) -> int:
    """Run ``main()`` on ``event_loop`` until it returns: 0; 2 for a tracing setup it cannot
    use or one of ``refusals`` (a setting); 1 for one of ``failures`` (an address or a file it
    cannot open). A refusal or failure is one line on stderr, ``msgbridge COMMAND: …``."""
    try:
        tracing = configure_tracing(os.environ)  # off unless OTEL_* asks (docs/operations.md)
    except TracingError as exc:
        print(f"msgbridge {command}: {exc}", file=sys.stderr)
        return 2
    limit_malloc_arenas()
    try:
        run_on(event_loop, main())
    except refusals as exc:
        print(f"msgbridge {command}: {exc}", file=sys.stderr)
        return 2
    except failures as exc:
        print(f"msgbridge {command}: {exc}", file=sys.stderr)
        return 1
    finally:
        if tracing is not None:
            tracing.shutdown()  # exports the spans still waiting
    return 0
