"""``python -m tests.reliability``: the reliability run (default size) or, with ``--soak``, the
soak; prints what it checked and exits 1 when an invariant or the memory bound fails."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._queued_phase import QueuedConfig
from ._soak import SoakConfig, run_soak
from ._suite import SuiteConfig, run_suite


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__)
    parser.add_argument("--webhooks", type=int, default=5000, help="webhooks the provider posts")
    parser.add_argument("--sends", type=int, default=1000, help="keyed sends")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of replicas and sidecars")
    parser.add_argument("--seed", type=int, help="seed of the random choices (default: random)")
    parser.add_argument(
        "--window", type=float, help="seconds the load is spread over (default: 5 per kill)"
    )
    parser.add_argument(
        "--conversations", type=int, default=50, help="queued phase: recipients (0: no phase)"
    )
    parser.add_argument(
        "--per-conversation", type=int, default=20, help="queued phase: messages to each"
    )
    parser.add_argument(
        "--queued-kills", type=int, default=8, help="queued phase: SIGKILLs (replicas, provider)"
    )
    parser.add_argument(
        "--queued-window", type=float, default=40.0, help="queued phase: seconds of load"
    )
    parser.add_argument(
        "--mms-every", type=int, default=5, help="about one webhook in N is an MMS (0: none)"
    )
    parser.add_argument(
        "--queued-mms", type=int, default=100, help="queued phase: MMS webhooks posted meanwhile"
    )
    parser.add_argument("--soak", action="store_true", help="run the soak instead")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the soak")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    if args.soak:
        soak = asyncio.run(run_soak(SoakConfig(minutes=args.minutes, seed=args.seed), say=say))
        for line in soak.lines():
            say(line)
        return 0 if soak.ok else 1
    config = SuiteConfig(
        webhooks=args.webhooks,
        sends=args.sends,
        kills=args.kills,
        seed=args.seed,
        window_s=args.window,
        mms_every=args.mms_every,
        queued_mms=args.queued_mms,
        queued=QueuedConfig(
            conversations=args.conversations,
            per_conversation=args.per_conversation,
            kills=args.queued_kills,
            window_s=args.queued_window,
        )
        if args.conversations > 0
        else None,
    )
    report = asyncio.run(run_suite(config, say=say))
    for line in report.lines():
        say(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
