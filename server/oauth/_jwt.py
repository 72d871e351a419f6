"""(ext) JWT auth: ``Authorization: Bearer <a token signed for the installation>``.

See docs/format.md, "Authentication".

:func:`sign_jwt` renders the definition's claims with the installation's property values, adds
``iat`` (now), ``exp`` (``iat + ttl_s``) and a random ``jti`` (these three replace any the template
sets), and signs with RS256 (``key`` renders to a PEM RSA private key) or HS256 (``key`` renders to
the shared secret, its UTF-8 bytes). :class:`JwtTokens` reuses a signed token until it is close
to expiry, so a busy installation does not sign on every send.

Signing uses joserfc, the JOSE library of the authlib project: ``authlib.jose`` is deprecated in
its favour (authlib ≥ 1.7 warns on import) and authlib itself depends on it.

A PEM key pasted into a one-line form field often arrives with its line breaks written as the two
characters ``\\n``; such a key is read with real line breaks.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import warnings
from collections import OrderedDict
from collections.abc import Mapping

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import OctKey, RSAKey

from server.engine import JwtAuth, Value

from ._errors import InvalidOAuthSetup
from ._templates import render_text, render_tree

__all__ = ["JwtTokens", "sign_jwt"]

_ADDED_CLAIMS = ("iat", "exp", "jti")


def _rsa_key(text: str) -> RSAKey:
    if "-----BEGIN" in text and "\n" not in text.strip() and "\\n" in text:
        text = text.replace("\\n", "\n")
    try:
        key = RSAKey.import_key(text)
    except (ValueError, TypeError, JoseError):
        key = None
    if key is None or not key.is_private:
        raise InvalidOAuthSetup(
            "the JWT key (/auth/key) must render to a PEM-encoded RSA private key for RS256"
        )
    return key


def _oct_key(text: str) -> OctKey:
    if not text:
        raise InvalidOAuthSetup("the JWT key (/auth/key) renders to nothing; HS256 needs a secret")
    with warnings.catch_warnings():
        # joserfc warns about secrets under 112 bits; the provider chose the secret, not us.
        warnings.simplefilter("ignore", SecurityWarning)
        return OctKey.import_key(text.encode("utf-8"))


def _claims(auth: JwtAuth, properties: Mapping[str, Value]) -> dict[str, object]:
    rendered = render_tree(auth.claims, properties)
    if rendered is None:
        return {}
    if not isinstance(rendered, dict):
        raise InvalidOAuthSetup("the JWT claims (/auth/claims) must be a JSON object")
    return {k: v for k, v in rendered.items() if k not in _ADDED_CLAIMS}


def _sign(auth: JwtAuth, key_text: str, claims: Mapping[str, object], *, iat: int) -> str:
    key: RSAKey | OctKey = _rsa_key(key_text) if auth.algorithm == "RS256" else _oct_key(key_text)
    payload = {
        **claims,
        "iat": iat,
        "exp": iat + auth.ttl_s,
        "jti": secrets.token_urlsafe(18),
    }
    try:
        return jwt.encode({"alg": auth.algorithm, "typ": "JWT"}, payload, key)
    except JoseError:
        raise InvalidOAuthSetup(
            f"the JWT key (/auth/key) cannot sign with {auth.algorithm}"
        ) from None


def sign_jwt(auth: JwtAuth, properties: Mapping[str, Value], *, now: float) -> str:
    """A freshly signed token for ``auth`` with the installation's ``properties``.

    Raises :class:`InvalidOAuthSetup` when the key cannot sign (never showing the key).
    """
    key_text = render_text(auth.key, properties)
    return _sign(auth, key_text, _claims(auth, properties), iat=int(now))


class JwtTokens:
    """Signed JWTs, reused until ``leeway_s`` (at most half the lifetime) before they expire.

    Tokens are cached by a digest of everything that goes into them (algorithm, key, claims,
    lifetime), so a changed property gets a new token at once; at most ``max_entries`` are kept.
    """

    def __init__(self, *, leeway_s: float = 60.0, max_entries: int = 1024) -> None:
        self._leeway_s = leeway_s
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def bearer_token(self, auth: JwtAuth, properties: Mapping[str, Value], *, now: float) -> str:
        """A signed token for ``auth`` that is good for a while yet at ``now``."""
        key_text = render_text(auth.key, properties)
        claims = _claims(auth, properties)
        digest = hashlib.sha256(
            json.dumps(
                [auth.algorithm, auth.ttl_s, key_text, claims], sort_keys=True, default=str
            ).encode("utf-8", "surrogatepass")
        ).hexdigest()
        cached = self._cache.get(digest)
        margin = min(self._leeway_s, auth.ttl_s / 2)
        if cached is not None and now < cached[1] - margin:
            self._cache.move_to_end(digest)
            return cached[0]
        iat = int(now)
        token = _sign(auth, key_text, claims, iat=iat)
        self._cache[digest] = (token, iat + auth.ttl_s)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return token
