"""The reliability suite: real processes killed under load, and the invariants that must hold.

``python -m tests.reliability [--webhooks N --sends M --kills K --seed S]`` runs two replicas of
``msgbridge serve`` on a PostgreSQL database of its own, a ``msgbridge sidecar`` in front of each,
the fake provider, a provider posting webhooks (each retried until 2xx), a caller sending keyed
messages (each retried with its key until it succeeds) and subscribers (a durable consumer's,
and a cursor follower) that reconnect to the other replica when theirs dies — while SIGKILLing a
replica or a sidecar at random moments — and prints the invariants with their counts (exit 1
when one fails). Then the queued-send phase (:mod:`tests.reliability._queued_phase`;
``--conversations N --per-conversation M --queued-kills K --queued-window S``, ``--conversations
0`` skips it): ordered conversations sent in QUEUE mode and synchronously while replicas and the
fake provider are SIGKILLed, checked for messages stuck, lost, sent twice or out of order.
``--soak --minutes M`` runs the soak instead (:mod:`tests.reliability._soak`).
``test_reliability.py`` runs a CI-sized run under pytest.
"""

from ._queued_phase import QueuedConfig
from ._suite import Report, SuiteConfig, run_suite

__all__ = ["QueuedConfig", "Report", "SuiteConfig", "run_suite"]
