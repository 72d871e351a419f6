"""The reliability run at CI size (``make reliability`` runs the full size): real replicas on
PostgreSQL, sidecars and the fake provider, SIGKILLed at random under load; every invariant must
hold; then queued sends while replicas and the provider are SIGKILLed. The seed is printed with
the report on failure, to run it again with ``--seed``."""

from __future__ import annotations

import pytest

from . import QueuedConfig, SuiteConfig, run_suite

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

QUEUED = QueuedConfig(conversations=10, per_conversation=8, kills=4, window_s=15.0)
CI_SIZE = SuiteConfig(webhooks=600, sends=150, kills=3, queued=QUEUED, queued_mms=30)


async def test_nothing_acknowledged_is_lost_or_doubled_while_processes_are_killed() -> None:
    said: list[str] = []
    report = await run_suite(CI_SIZE, say=said.append)
    text = "\n".join([*said, *report.lines()])
    assert len(report.kills) == CI_SIZE.kills + QUEUED.kills, text
    killed = {k.process.split("-")[0] for k in report.kills}
    assert killed == {"replica", "sidecar", "fake"}, text
    assert [i.name for i in report.invariants if not i.ok] == [], text
    assert len(report.invariants) == 13, text
