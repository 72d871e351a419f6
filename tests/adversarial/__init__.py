"""The adversarial suite: hostile input against real processes over real sockets on 127.0.0.1.

``python -m tests.adversarial [--only SUBSTRING]`` (``make adversarial``) starts ``msgbridge
serve`` (SQLite, the sidecar in-process, API tokens), a separate ``msgbridge sidecar`` in front
of it, the fake provider and a hostile provider, then runs each case and judges it: the status
(HTTP, gRPC code or CLI exit), the resident memory summed over the server's processes (under
300 MB), the longest unrelated gRPC call made meanwhile by a prober in a process of its own
(under 250 ms), and a good webhook afterwards that must still become an event. One line per
case, then ``adversarial: N passed, M failed``; exit 1 when a case failed.
"""

from __future__ import annotations

from ._case import Case

__all__ = ["all_cases"]


def all_cases() -> list[Case]:
    """Every case, in the order they run (grouped by class, one module each)."""
    from . import (
        _cases_bodies,
        _cases_bombs,
        _cases_definitions,
        _cases_encodings,
        _cases_issue,
        _cases_protobuf,
        _cases_provider,
        _cases_signatures,
        _cases_slow,
        _cases_tokens,
        _cases_xml,
    )

    return [
        *_cases_issue.CASES,
        *_cases_bodies.CASES,
        *_cases_bombs.CASES,
        *_cases_xml.CASES,
        *_cases_slow.CASES,
        *_cases_definitions.CASES,
        *_cases_encodings.CASES,
        *_cases_provider.CASES,
        *_cases_signatures.CASES,
        *_cases_protobuf.CASES,
        *_cases_tokens.CASES,
    ]
