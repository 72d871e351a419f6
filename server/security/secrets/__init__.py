"""Secret values: sealed at rest, masked wherever they could be shown.

- :class:`SecretBox` seals installation secrets (and OAuth tokens) with a key the operator holds;
  :func:`hash_token` and :func:`new_token` make the stored form of webhook and API tokens.
- :class:`SecretMask` replaces every known secret value (and its common encodings) with ``***``
  in text the gateway shows or logs, such as a provider's echoed answer.
"""

from ._box import SecretBox, SecretBoxError, hash_token, is_sealed, new_token
from ._mask import MASK, MIN_LENGTH, SecretMask

__all__ = [
    "MASK",
    "MIN_LENGTH",
    "SecretBox",
    "SecretBoxError",
    "SecretMask",
    "hash_token",
    "is_sealed",
    "new_token",
]
