"""What the OAuth2 tests share: the client registered at the test authorization server, a fake
clock, integration definitions that use OAuth2, and the set-up each test gets."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from _authorization_server import RunningAuthorizationServer

from server.engine import Definition, Value, load_definition
from server.oauth import MemoryTokenVault, OAuthTokens
from server.outbound import OutboundClient

CLIENT_ID = "msgbridge-client"
CLIENT_SECRET = "cs-Zq8sV1-very-secret-client-secret"
REDIRECT_URI = "https://gateway.example/oauth/callback"
FORM = "application/x-www-form-urlencoded;charset=utf-8"


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def oauth_definition(
    *,
    flow: str = "0",
    content_type: str = FORM,
    token_query: str = "",
    integration_id: str = "oauth-provider",
) -> Definition:
    """An integration whose endpoints are templates over the "Auth Host" property;
    ``token_query`` is appended to the token endpoint's URL."""
    oauth2: dict[str, object] = {
        "client_id": "$Client ID$",
        "client_secret": "$Client Secret$",
        "flow_type": {"default": flow},
        "token_endpoint": "http://$Auth Host$/token" + token_query,
        "token_parameters": {"content_type": content_type},
        "request_auth": "Bearer",
    }
    if flow == "0":
        oauth2["authorization_endpoint"] = "http://$Auth Host$/authorize"
        oauth2["authorization_parameters"] = {"default": "scope=api%20refresh_token"}
    document = {
        "id": integration_id,
        "name": "OAuth provider",
        "class": "sms",
        "properties": ["Client ID", "Client Secret", "Auth Host"],
        "OAuth2": oauth2,
        "API": {
            "SendMessage": {
                "request_method": "POST",
                "request_url": "http://$Auth Host$/api",
                "request_parameters": {"to": "$to$", "content": "$content$"},
                "response_map": {"id": "$messageid$"},
            }
        },
    }
    return load_definition(json.dumps(document))


@dataclass
class OAuthSetup:
    provider: RunningAuthorizationServer
    tokens: OAuthTokens
    vault: MemoryTokenVault
    clock: FakeClock
    outbound: OutboundClient
    properties: Mapping[str, Value]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.provider.port}"
