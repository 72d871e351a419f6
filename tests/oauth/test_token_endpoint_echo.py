"""A token endpoint that echoes the client credentials in its error: the refusal the caller gets,
the installation's marked error and the logs have them masked (docs/format.md,
"Authentication"), in the error code as in the description, verbatim or as Basic's base64.

The token endpoint is the fake provider on 127.0.0.1, scripted to refuse; the token request goes
through the real outbound client."""

from __future__ import annotations

import base64
import logging

import pytest
from _oauth_setup import CLIENT_ID, CLIENT_SECRET, oauth_definition

from server.demo import Answer, start_fake_provider
from server.oauth import ClientCredentialsRefused, MemoryTokenVault, OAuthTokens, OutboundTransport
from server.outbound import OutboundClient

BASIC = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()


def quote_dashes(text: str) -> str:
    """Percent-encoded as an eager encoder writes it (``-`` too, which it may leave as it is)."""
    return text.replace("-", "%2D")


@pytest.mark.parametrize(
    "answer",
    [
        {"error": "invalid_client", "error_description": f"Basic {BASIC} is not a client"},
        {"error": "invalid_client", "error_description": f"secret={quote_dashes(CLIENT_SECRET)}"},
        {"error": CLIENT_SECRET, "error_description": "unknown"},
    ],
)
async def test_client_credentials_echoed_by_the_token_endpoint_are_masked(
    outbound: OutboundClient,
    caplog: pytest.LogCaptureFixture,
    answer: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with await start_fake_provider() as provider:
        provider.state.script("/token", Answer(status=401, json=answer))
        vault = MemoryTokenVault()
        tokens = OAuthTokens(vault=vault, transport=OutboundTransport(outbound), timeout_s=5.0)
        properties = {
            "Client ID": CLIENT_ID,
            "Client Secret": CLIENT_SECRET,
            "Auth Host": provider.url.removeprefix("http://"),
        }

        with pytest.raises(ClientCredentialsRefused) as refused:
            await tokens.bearer_token("inst-1", oauth_definition(flow="1"), properties)

        (request,) = provider.state.requests
        assert dict(request.headers)["Authorization"] == f"Basic {BASIC}"  # what it echoes
        said = [str(refused.value), *(str(reason) for _, reason in vault.states.values())]
        said += [r.getMessage() + " " + str(r.__dict__) for r in caplog.records]
        assert "***" in str(refused.value)
        for text in said:
            for secret in (CLIENT_SECRET, BASIC, BASIC.rstrip("=")[:16]):
                assert secret not in text, text
