"""``python -m server.demo``: the fake provider alone, for a service running in another process."""

from ._fake_provider import main

main()
