"""``basic``: HTTP Basic credentials on the webhook, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from server.engine import WebhookAuth

from ._encoding import utf8
from ._failed import WebhookAuthFailed
from ._options import render, secret
from ._request import SignedRequest, single_header

__all__ = ["verify_basic"]


def verify_basic(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    # The password is the secret; a user name may legitimately be empty.
    password = utf8(secret(auth, "password", properties))
    username = utf8(render(auth, "username", properties))
    scheme, _, encoded = single_header(request, "Authorization").partition(" ")
    if scheme.lower() != "basic":
        raise WebhookAuthFailed("the Authorization header does not hold Basic credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookAuthFailed("the Basic credentials are not valid base64") from None
    given_user, colon, given_password = decoded.partition(b":")
    if not colon:
        raise WebhookAuthFailed("the Basic credentials are not a user name and password")
    user_ok = hmac.compare_digest(given_user, username)
    password_ok = hmac.compare_digest(given_password, password)
    if not (user_ok & password_ok):
        raise WebhookAuthFailed("the user name or password does not match")
