"""The processes of a run on one PostgreSQL database, and the integration they serve.

Two replicas (``msgbridge serve``) share the database and the secret key file; each has a
separate ``msgbridge sidecar`` in front of it (``--core`` that replica); the fake provider takes
the sends. Webhooks reach a replica only through the sidecars: a provider posts to one address,
and a load balancer picks a sidecar — the webhook sender plays both parts (see
:mod:`tests.reliability._webhooks`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

from ._processes import (
    FakeProviderProcess,
    ManagedProcess,
    MotoProcess,
    RecordingProviderProcess,
    ReplicaProcess,
    SidecarProcess,
    write_secret_key,
)

__all__ = [
    "CHANNEL_OPTIONS",
    "FROM_NUMBER",
    "INBOUND_TYPES",
    "INTEGRATION",
    "ORG",
    "Cluster",
    "definition_json",
]

INTEGRATION = "reliability-sms"
ORG = "org-reliability"
FROM_NUMBER = "+15550001111"

# Clients find a restarted replica quickly (gRPC's default reconnect backoff grows to minutes).
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]

# The events the webhooks make (inbound SMS and MMS), which subscribers and the log reading ask
# for: a send whose caller was replied before its outcome publishes that outcome as a MESSAGE_SENT
# or MESSAGE_FAILED event too (docs/delivery.md), which is no webhook's.
INBOUND_TYPES = (gateway_pb2.Event.MESSAGE, gateway_pb2.Event.MMS)

# moto takes any credentials; the replicas read them from the environment, as from a real store's
# (docs/media.md, "Storage").
_MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Inbound SMS and MMS (with `media`, a list of URLs) with the provider's message id (the dedupe
# key of a retried webhook). An SMS has no `media` (docs/format.md, "Choosing a model").
_MESSAGE = {"id": "$messageid$", "from": "$from$", "to": "$to$", "text": "$content$"}
_WEBHOOK_MODELS = [
    {
        "event_key": "sms",
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": _MESSAGE,
        "absent": ["/media"],
    },
    {
        "event_key": "mms",
        "event_type": "mms",
        "request_method": "POST",
        "request_parameters": {**_MESSAGE, "media": "$url$"},
    },
]


def definition_json(provider_url: str) -> str:
    """A JSON-send integration whose sends go to the fake provider, carrying our message id."""
    request = {
        "request_method": "POST",
        "request_url": provider_url + "/messages",
        "request_content_type": "application/json",
        # `ref`: our id of the message, by which the provider's records say which message each
        # request was (docs/format.md, `gateway_id`).
        "request_parameters": {
            "from": "$from$",
            "to": "$to$",
            "content": "$content$",
            "ref": "$gateway_id$",
        },
        "response_map": {"data": {"id": "$messageid$"}},
    }
    return json.dumps(
        {
            "id": INTEGRATION,
            "name": "Reliability SMS",
            "class": "sms",
            "properties": ["API key"],
            "auth": {"type": "Bearer", "token": "$API key$"},
            "API": {"SendMessage": request},
            "Webhook": _WEBHOOK_MODELS,
        }
    )


@dataclass(eq=False, kw_only=True)
class Cluster:
    workdir: Path
    database_url: str
    provider: FakeProviderProcess
    replicas: list[ReplicaProcess]
    sidecars: list[SidecarProcess]
    # The object store the replicas share their media in, when started with ``media_store``.
    store: MotoProcess | None = None
    webhook_path: str = ""
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    @classmethod
    async def start(
        cls,
        workdir: Path,
        database_url: str,
        *,
        replicas: int = 2,
        sidecars: bool = True,
        replica_extra: Sequence[str] = (),
        provider_max_recorded: int = 100_000,
        record_sends: bool = False,
        provider_delay_s: float = 0.0,
        media_store: bool = False,
    ) -> Cluster:
        """Start the fake provider, the replicas (together: they migrate the new database under
        its advisory lock) and a sidecar per replica. With ``record_sends`` the provider appends
        every send to ``workdir/provider-sends.jsonl`` (it may then be killed and restarted: see
        :class:`RecordingProviderProcess`), answering after ``provider_delay_s``. With
        ``media_store`` the replicas keep their media in one bucket of moto's S3 server, started
        first (:class:`MotoProcess`); otherwise each under its own data directory."""
        key = write_secret_key(workdir / "secret.key")
        provider = (
            RecordingProviderProcess(
                name="fake-provider",
                max_recorded=provider_max_recorded,
                record=workdir / "provider-sends.jsonl",
                delay_s=provider_delay_s,
            )
            if record_sends
            else FakeProviderProcess(name="fake-provider", max_recorded=provider_max_recorded)
        )
        store = MotoProcess(name="moto-s3") if media_store else None
        if store is not None:
            await store.start()
        extra, env = tuple(replica_extra), {}
        if store is not None:
            extra += ("--media-store", f"s3://{store.bucket}/media")
            extra += ("--media-s3-endpoint", store.url)
            env = dict(_MOTO_CREDENTIALS)
        names = "abcdefgh"
        cluster = cls(
            workdir=workdir,
            database_url=database_url,
            provider=provider,
            replicas=[
                ReplicaProcess(
                    name=f"replica-{names[i]}",
                    database_url=database_url,
                    data_dir=workdir / f"replica-{names[i]}",
                    secret_key_file=key,
                    extra=extra,
                    env=env,
                )
                for i in range(replicas)
            ],
            sidecars=[],
            store=store,
        )
        try:
            await provider.start()
            await asyncio.gather(*(r.start() for r in cluster.replicas))
            if sidecars:
                cluster.sidecars = [
                    SidecarProcess(name=f"sidecar-{names[i]}", core=replica.target)
                    for i, replica in enumerate(cluster.replicas)
                ]
                await asyncio.gather(*(s.start() for s in cluster.sidecars))
        except BaseException:
            await cluster.aclose()
            raise
        return cluster

    @property
    def processes(self) -> list[ManagedProcess]:
        return [
            *self.replicas,
            *self.sidecars,
            self.provider,
            *([self.store] if self.store else []),
        ]

    def channel(self, replica: ReplicaProcess) -> grpc.aio.Channel:
        """A channel to ``replica``'s address (kept across its restarts)."""
        if replica.name not in self._channels:
            self._channels[replica.name] = grpc.aio.insecure_channel(
                replica.target, options=CHANNEL_OPTIONS
            )
        return self._channels[replica.name]

    def stub(self, replica: ReplicaProcess) -> gateway_pb2_grpc.GatewayStub:
        return gateway_pb2_grpc.GatewayStub(self.channel(replica))

    async def install(self) -> gateway_pb2.Installation:
        """Register the integration and enable it for the organisation (on the first replica);
        the webhook path is the installation's (its token routes the webhooks)."""
        stub = self.stub(self.replicas[0])
        await stub.RegisterIntegration(
            gateway_pb2.RegisterIntegrationRequest(
                definition_json=definition_json(self.provider.url)
            ),
            timeout=30,
        )
        installation: gateway_pb2.Installation = await stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=ORG,
                integration_id=INTEGRATION,
                properties={"API key": "reliability-key"},
                numbers=[gateway_pb2.NumberAssignment(number=FROM_NUMBER, users=["101"])],
            ),
            timeout=30,
        )
        self.webhook_path = "/" + installation.webhook_url.split("://", 1)[1].split("/", 1)[1]
        return installation

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        await asyncio.gather(
            *(p.stop() for p in self.processes if p.running), return_exceptions=True
        )
