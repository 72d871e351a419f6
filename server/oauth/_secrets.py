"""The secret values of an installation's provider calls, as one :class:`SecretMask`.

A provider's answer is masked with every value the gateway may have sent it that an operator
would not want shown (docs/format.md, "The file" and "Authentication"): the values of the
properties the definition marks secret; the credentials its ``auth`` renders (the Basic user,
password and ``user:pass``, whose base64 is the header's; a Bearer token; the values of header
auth; a JWT signing key); the OAuth2 client secret with ``client_id:client_secret`` (the token
endpoint's Basic credentials); and the tokens the caller names (the bearer token it sent, a
refresh token, an authorization code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from server.engine import BasicAuth, BearerAuth, Definition, HeaderAuth, JwtAuth, Value

from ..security.secrets import SecretMask
from ._templates import render_text

__all__ = ["installation_secrets"]


def installation_secrets(
    definition: Definition,
    properties: Mapping[str, Value],
    *,
    tokens: Iterable[str | None] = (),
) -> SecretMask:
    """The mask of the installation's secret values and of ``tokens``."""
    values: list[str | None] = []
    for name in definition.secret_properties:
        value = properties.get(name)
        values.extend(value if isinstance(value, tuple) else (value,))
    auth = definition.auth
    if isinstance(auth, BasicAuth):
        user = render_text(auth.username, properties)
        password = render_text(auth.password, properties)
        values += [user, password, f"{user}:{password}"]
    elif isinstance(auth, BearerAuth):
        values.append(render_text(auth.token, properties))
    elif isinstance(auth, HeaderAuth):
        values += [render_text(template, properties) for template in auth.headers.values()]
    elif isinstance(auth, JwtAuth):
        values.append(render_text(auth.key, properties))
    if definition.oauth2 is not None:
        client_id = render_text(definition.oauth2.client_id, properties)
        client_secret = render_text(definition.oauth2.client_secret, properties)
        if client_secret:  # a public client's id alone is no secret
            values += [client_secret, f"{client_id}:{client_secret}"]
    values.extend(tokens)
    return SecretMask.of(values)
