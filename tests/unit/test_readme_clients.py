"""The README's section for clients: where the google.rpc protos come from, and the Python
example that sets the keyword field ``from`` runs as written (issue 19)."""

from __future__ import annotations

import re
from pathlib import Path

from msgbridge.v1 import gateway_pb2

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_readme_says_where_the_google_rpc_protos_come_from() -> None:
    for needle in (
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "googleapis",
        "googleapis-common-protos",
        "grpcio-status",
        "grpc-status-details-bin",
    ):
        assert needle in README, needle


def test_the_readme_example_for_from_runs() -> None:
    (block,) = [
        code for code in re.findall(r"```python\n(.*?)```", README, re.S) if '**{"from"' in code
    ]
    event = gateway_pb2.Event(**{"from": "+15557654321"})
    scope: dict[str, object] = {"event": event}
    exec(compile(block, "README.md", "exec"), scope)
    request = scope["request"]
    assert isinstance(request, gateway_pb2.SendMessageRequest)
    assert getattr(request, "from") == "+15550002222"
    assert scope["sender"] == "+15557654321"
