"""Benchmarks (not tests): ``make bench`` or ``.venv/bin/python -m tests.bench``.

Each entry of ``tests.bench.__main__.BENCHMARKS`` is a named async function that measures one
thing at one concurrency and returns a :class:`~tests.bench._harness.Result` (a dict: rate,
p50/p99 latency, request and error counts). The run prints a table and, when ``BENCH_OUT`` names
a file, writes the results there as JSON.

Process arrangement (the same for the baselines and the service benchmark, so they compare):

- the fake provider runs in its own process (``python -m server.demo``), as in
  ``make run``;
- each server under test (the bare gRPC echo, the bare relay, the msgbridge service) runs in its
  own process, started once and shared by that benchmark's concurrency levels;
- the load generator is this process: one event loop, one gRPC channel (or one aiohttp session)
  shared by N callers in a closed loop (a caller sends its next request when its previous answer
  arrived).

Python runs one event loop per process on one core, so a server measured in the load generator's
process would share a core with its own load and report half its rate. On this 2-core machine the
relay and the service benchmarks keep three processes busy (load, server, fake); they compete for
the same cores in the same way, which is what makes "service rate / relay rate" a fair ratio.
Absolute numbers describe this machine only, and other work on it shows up as noise.

Each measurement is bounded: a fixed number of requests or a time cap, whichever comes first,
after a warm-up that opens connections and is not counted. The rows a target compares run in
turn, three rounds each, and report their median round (``tests/bench/_turns.py``).

``--against DIR`` (``tests/bench/against.py``) runs nothing else: this checkout's service and
another checkout's, side by side, sent to by the same callers in turn, their CPU per send
compared. A run's temporary files (stores, keys) stay in one scratch directory, removed at its
end (``BenchEnv``).

The throttle benchmarks (``tests/bench/throttle.py``) measure rates on the provider's side: a
second fake provider process keeps every request with its arrival time, and each scenario
reports its worst deviation from the limit as a target of its own (``Check``).
"""
