"""Secrets at rest: AES-256-GCM (``cryptography``) under keys from a key file.

The key file holds one base64 key per line; the first encrypts, every line decrypts, so a key is
rotated by putting a new one first and keeping the old ones below it (data is re-encrypted under
the first key whenever it is written again). A ciphertext names its key by a short fingerprint.
When the file does not exist it is created with a fresh key and mode 0600.

Other uses of the operator's keys (the HMAC of signed media URLs, docs/architecture.md) never use
a key itself: :meth:`SecretBox.derived_keys` derives one key per line and purpose with HKDF-SHA256,
in the file's order, so the same rotation applies (the first signs, every one verifies).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "SecretBoxError", "hash_token", "is_sealed", "new_token"]

logger = logging.getLogger(__name__)

_PREFIX = "enc:v1:"
# HKDF's info for a derived key is this, then the purpose: no purpose can yield the key of another.
_DERIVED_INFO = b"msgbridge derived key v1\x00"


class SecretBoxError(Exception):
    """A key file that cannot be used, or a ciphertext that no key opens."""


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"msgbridge-key-id" + key).hexdigest()[:12]


class SecretBox:
    """Encrypts and decrypts short secrets (property values, tokens) for the store."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretBoxError("no key given")
        for key in keys:
            if len(key) != 32:
                raise SecretBoxError("a key must be 32 bytes (base64 in the key file)")
        self._primary = keys[0]
        # In the file's order, each key once (a line repeated adds nothing).
        self._ordered = tuple(dict.fromkeys(keys))
        self._primary_id = _fingerprint(keys[0])
        self._keys = {_fingerprint(k): AESGCM(k) for k in keys}

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> SecretBox:
        """Read the key file; create it (0600, one fresh key) when it is missing and ``create``."""
        if not path.exists():
            if not create:
                raise SecretBoxError(f"secret key file {path} does not exist")
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
            # Written whole under another name, then linked into place: replicas starting
            # together on one new key file all end up with the one key that was linked first,
            # and none reads a file that is not written yet.
            draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(key + "\n")
                os.link(draft, path)
                logger.warning("created a new secret key file", extra={"path": str(path)})
            except FileExistsError:
                pass  # another process created it first: use theirs
            finally:
                draft.unlink()
        try:
            lines = path.read_text(encoding="ascii").split()
            keys = [base64.b64decode(line, validate=True) for line in lines if line]
        except (OSError, ValueError) as exc:
            raise SecretBoxError(f"secret key file {path} cannot be read: {exc}") from None
        return cls(keys)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self._primary_id].encrypt(nonce, plaintext.encode(), None)
        return f"{_PREFIX}{self._primary_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, ciphertext: str) -> str:
        if not ciphertext.startswith(_PREFIX):
            raise SecretBoxError("not a msgbridge ciphertext")
        key_id, _, data = ciphertext[len(_PREFIX) :].partition(":")
        aead = self._keys.get(key_id)
        if aead is None:
            raise SecretBoxError(f"no configured key opens this secret (key id {key_id})")
        try:
            raw = base64.b64decode(data, validate=True)
            return aead.decrypt(raw[:12], raw[12:], None).decode()
        except (ValueError, InvalidTag) as exc:
            raise SecretBoxError(
                "a stored secret is damaged or was sealed with another key"
            ) from exc

    def derived_keys(self, purpose: bytes) -> tuple[bytes, ...]:
        """One 32-byte key per key of the file, for ``purpose`` only, the primary's first.

        Each is HKDF-SHA256 of a file key with ``purpose`` in its info: never a key of the file,
        never the key of another purpose, and the same in every process reading the same file.
        """
        if not purpose:
            raise ValueError("a derived key needs a purpose")
        return tuple(
            HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVED_INFO + purpose
            ).derive(key)
            for key in self._ordered
        )

    def needs_reencryption(self, ciphertext: str) -> bool:
        """True when ``ciphertext`` was sealed under an older key."""
        return not ciphertext.startswith(f"{_PREFIX}{self._primary_id}:")


def is_sealed(value: str) -> bool:
    """True when ``value`` is a ciphertext of :meth:`SecretBox.encrypt`."""
    return value.startswith(_PREFIX)


def new_token() -> str:
    """An unguessable URL-safe token (256 bits)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """How a token is stored: its SHA-256, so the store never holds the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()
