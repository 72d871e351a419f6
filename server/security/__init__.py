"""What guards the gateway, one folder per guarded thing.

- :mod:`server.security.api_access` guards the gRPC API: bearer tokens with scopes (optionally
  scoped to organisations), TLS and mutual TLS, and the rule that refuses an exposed listener
  without them.
- :mod:`server.security.webhook_auth` guards the webhook endpoint: a definition's ``WebhookAuth``
  (HMAC, Twilio, JWT, Ed25519, Basic) checked before a webhook is stored.
- :mod:`server.security.secrets` guards secret values: installation secrets sealed at rest
  (:class:`~server.security.secrets.SecretBox`) and masked out of anything shown or logged
  (:class:`~server.security.secrets.SecretMask`).

The provider credentials an installation sends with (OAuth2 tokens, JWTs) are kept by
:mod:`server.core` and fetched by :mod:`server.oauth`; the egress policy that limits where the
gateway may call lives with the outbound client in :mod:`server.outbound`.
"""
