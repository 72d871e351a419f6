"""``msgbridge serve --demo``: the fake provider started beside the service, and the demo
integration (``integrations/demo.json``) registered to send to it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotFound
from ._fake_provider import RunningFakeProvider, start_fake_provider

if TYPE_CHECKING:  # the demo is started by the service's caller, never imported by the service
    from ..app import GatewayServer

__all__ = ["DEMO_DEFINITION", "start_demo"]

logger = logging.getLogger(__name__)

DEMO_DEFINITION = Path(__file__).resolve().parents[2] / "integrations" / "demo.json"


async def start_demo(built: GatewayServer) -> RunningFakeProvider:
    """Start the fake provider where ``demo_provider_listen`` says and register the demo
    integration that talks to it — only when the stored one differs, so that each ``make run``
    does not make a new version; :meth:`RunningFakeProvider.aclose` stops the provider."""
    host, _, port = built.settings.demo_provider_listen.rpartition(":")
    fake = await start_fake_provider(host=host, port=int(port))
    definition = DEMO_DEFINITION.read_text(encoding="utf-8")
    definition = definition.replace("127.0.0.1:8090", fake.url.removeprefix("http://"))
    try:
        await _register_when_changed(built, definition)
    except BaseException:
        await fake.aclose()
        raise
    logger.info("demo: fake provider and the demo integration ready", extra={"url": fake.url})
    return fake


async def _register_when_changed(built: GatewayServer, definition: str) -> None:
    integration_id = str(json.loads(definition)["id"])
    try:
        stored: str | None = (await built.catalog.get(integration_id)).definition_json
    except NotFound:
        stored = None
    if stored != definition:  # kept as registered, byte for byte
        await built.catalog.register(definition)
