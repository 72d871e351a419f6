"""Replicas started together on one key file that does not exist yet share the one key created.

Two processes open the same new key file at the same instant, a hundred times over: each time
both get a box, with the same key, and the file holds that one key.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from server.security.secrets import SecretBox

ROUNDS = 100


def _open_together(
    directory: str, barrier: Barrier, results: multiprocessing.Queue[tuple[int, str]]
) -> None:
    for n in range(ROUNDS):
        barrier.wait()
        try:
            box = SecretBox.from_file(Path(directory) / f"secret-{n}.key")
        except Exception as exc:
            results.put((n, f"{type(exc).__name__}: {exc}"))
        else:
            results.put((n, box.encrypt("probe").split(":")[2]))  # the key's fingerprint


def test_processes_creating_one_key_file_together_get_the_same_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results: multiprocessing.Queue[tuple[int, str]] = context.Queue()
    workers = [
        context.Process(target=_open_together, args=(str(tmp_path), barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes: dict[int, list[str]] = {}
    for _ in range(2 * ROUNDS):
        n, outcome = results.get(timeout=60)
        outcomes.setdefault(n, []).append(outcome)
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    differing = {n: o for n, o in outcomes.items() if len(set(o)) != 1 or "Error" in o[0]}
    assert differing == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"secret-{n}.key" for n in range(ROUNDS)
    )
    for n in range(ROUNDS):
        assert len((tmp_path / f"secret-{n}.key").read_text().split()) == 1
