"""The table of WebhookAuth types, one verifier each, and the single entry point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from server.engine import WebhookAuth

from ._basic import verify_basic
from ._ed25519 import verify_ed25519
from ._failed import WebhookAuthFailed
from ._hmac import verify_hmac
from ._jwt import verify_jwt
from ._request import SignedRequest
from ._rsa import verify_rsa
from ._token import verify_token
from ._twilio import verify_twilio

__all__ = ["verify_webhook"]


class Verifier(Protocol):
    def __call__(
        self,
        auth: WebhookAuth,
        properties: Mapping[str, str],
        request: SignedRequest,
        *,
        now: float,
    ) -> None: ...


_VERIFIERS: Mapping[str, Verifier] = {
    "hmac": verify_hmac,
    "twilio": verify_twilio,
    "ed25519": verify_ed25519,
    "jwt": verify_jwt,
    "basic": verify_basic,
    "token": verify_token,
    "rsa": verify_rsa,
}


def verify_webhook(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    """Return when ``request`` is proven to come from the provider; raise otherwise.

    ``properties`` maps property names to the installation's values (the secrets the options'
    templates name); ``now`` is the current Unix time, for timestamp windows. Raises
    :class:`WebhookAuthFailed` — and nothing else, whatever the request holds — with a short
    reason that names no secret.
    """
    verifier = _VERIFIERS.get(auth.type)
    if verifier is None:
        raise WebhookAuthFailed(f"the WebhookAuth type {auth.type!r} is not known")
    verifier(auth, properties, request, now=now)
