"""``jwt``: an HS256 token in a header, signed with the shared secret (Vonage's signed webhooks).

The token is verified with joserfc (Authlib's JOSE library; ``authlib.jose`` itself is deprecated
in favour of it), HS256 only. ``exp``, ``nbf`` and ``iat`` are checked against ``now`` with a
small leeway for clock skew, and ``iat`` — the token's signed timestamp — must also be within the
replay window (300 s): Vonage's tokens carry ``iat`` and no ``exp``.

With ``payload_hash: true`` a request with a body must carry a ``payload_hash`` claim equal to the
hex SHA-256 of the body; a request without one (MessageBird's GET status reports) may leave the
claim out, and is checked when it has it. With ``url_hash: true`` (ext) the token's ``url_hash``
claim must equal the hex SHA-256 of the full URL the provider called, query included, so a token
cannot be replayed with other query values (MessageBird).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from server.engine import WebhookAuth

from ._encoding import utf8
from ._failed import WebhookAuthFailed
from ._options import flag, secret, text, tolerance
from ._request import SignedRequest, single_header
from ._timestamps import check_window

__all__ = ["verify_jwt"]

LEEWAY_S = 60
_BEARER = "bearer "


def verify_jwt(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, *, now: float
) -> None:
    raw_key = utf8(secret(auth, "secret", properties))
    value = single_header(request, text(auth, "header", "Authorization"))
    token = value[len(_BEARER) :].strip() if value[: len(_BEARER)].lower() == _BEARER else value
    # Built directly rather than through OctKey.import_key, which warns on short keys and on
    # text that looks like a PEM key: the secret is whatever the provider issued.
    key = OctKey(raw_key, raw_key)
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"]).claims
    except (JoseError, ValueError, TypeError):
        raise WebhookAuthFailed("the token is not validly signed") from None
    try:
        jwt.JWTClaimsRegistry(now=math.floor(now), leeway=LEEWAY_S).validate(claims)
    except JoseError:
        raise WebhookAuthFailed("the token is expired or not yet valid") from None
    issued_at = claims.get("iat")
    if isinstance(issued_at, int | float) and not isinstance(issued_at, bool):
        check_window(float(issued_at), now=now, tolerance=tolerance(auth) + LEEWAY_S)
    if flag(auth, "payload_hash"):
        _check_hash(claims, "payload_hash", request.body, required=bool(request.body), what="body")
    if flag(auth, "url_hash"):
        _check_hash(claims, "url_hash", utf8(request.url), required=True, what="URL")


def _check_hash(
    claims: Mapping[str, object], claim: str, signed: bytes, *, required: bool, what: str
) -> None:
    """The claim, when required or present, is the hex SHA-256 of ``signed``."""
    claimed = claims.get(claim)
    if claimed is None and not required:
        return
    actual = hashlib.sha256(signed).hexdigest()
    if not isinstance(claimed, str) or not hmac.compare_digest(
        utf8(claimed.lower()), actual.encode()
    ):
        raise WebhookAuthFailed(f"the {what} does not match the token's {claim}")
