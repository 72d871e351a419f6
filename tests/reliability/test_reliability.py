"""The reliability run at CI size (``make reliability`` runs the full size): real replicas on
PostgreSQL, sidecars and the fake provider, SIGKILLed at random under load; every invariant must
hold. The seed is printed with the report on failure, to run it again with ``--seed``."""

from __future__ import annotations

import pytest

from . import SuiteConfig, run_suite

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

CI_SIZE = SuiteConfig(webhooks=600, sends=150, kills=3)


async def test_nothing_acknowledged_is_lost_or_doubled_while_processes_are_killed() -> None:
    said: list[str] = []
    report = await run_suite(CI_SIZE, say=said.append)
    text = "\n".join([*said, *report.lines()])
    assert len(report.kills) == CI_SIZE.kills, text
    assert {k.process.split("-")[0] for k in report.kills} == {"replica", "sidecar"}, text
    assert [i.name for i in report.invariants if not i.ok] == [], text
    assert len(report.invariants) == 6, text
