"""API tokens from a file (``--api-tokens-file``) and from ``MSGBRIDGE_API_TOKENS``.

One token a line (in the variable, lines or ``;``-separated entries)::

    # SCOPE  TOKEN-or-sha256:HEX                                                 [NAME] [orgs=…]
    full     sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  deployer
    read     Zm9vYmFyYmF6cXV4cXV1eHh5eno
    read     sha256:…                                                 reporting orgs=acme,globex
    ingest   sha256:…                                                             sidecar

SCOPE is ``read``, ``full`` or ``ingest``. A token is best stored as its SHA-256 (``printf %s TOKEN
| sha256sum``); a token in clear must be at least 16 characters of RFC 6750's ``b64token`` alphabet.
NAME (default: where the token was given) labels it in messages. ``orgs=ORG[,ORG…]``, anywhere after
the token, scopes a ``read`` or ``full`` token to those organisations (see
:mod:`server.security.api_access._caller`); without it a token serves every organisation. The
``ingest`` token is the sidecar's, for every organisation's webhooks: it takes no ``orgs=``. Blank
lines and lines starting with ``#`` are skipped. Errors name the place, never the token.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ...config import SettingsError
from ._policy import AccessPolicy, ApiToken, Scope, hash_token

__all__ = ["MIN_TOKEN_LENGTH", "TOKENS_ENV", "load_access_policy", "parse_tokens"]

logger = logging.getLogger(__name__)

TOKENS_ENV = "MSGBRIDGE_API_TOKENS"
MIN_TOKEN_LENGTH = 16

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_HASH_PREFIX = "sha256:"
_ORGS_PREFIX = "orgs="
_SCOPES = ", ".join(scope.value for scope in Scope)


def parse_tokens(
    entries: list[str], *, where: str, unit: str = "line"
) -> tuple[tuple[ApiToken, ...], bool]:
    """The tokens of ``entries``, and whether any was given in clear.

    ``where`` and ``unit`` name the place in errors (``"api_tokens_file x.txt"``, ``"line"``).
    """
    tokens: list[ApiToken] = []
    seen: dict[bytes, int] = {}
    in_clear = False
    for number, raw in enumerate(entries, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        place = f"{where} {unit} {number}"
        fields = line.split()
        orgs_fields = [f for f in fields[2:] if f.startswith(_ORGS_PREFIX)]
        names = [f for f in fields[2:] if not f.startswith(_ORGS_PREFIX)]
        if len(fields) < 2 or len(names) > 1 or len(orgs_fields) > 1:
            raise SettingsError(
                f"{place}: expected 'SCOPE TOKEN' or 'SCOPE sha256:HEX', then optionally a name "
                "and orgs=ORG[,ORG...]"
            )
        scope_text, secret = fields[0], fields[1]
        try:
            scope = Scope(scope_text.lower())
        except ValueError:
            raise SettingsError(
                f"{place}: unknown scope {scope_text!r} (expected one of {_SCOPES})"
            ) from None
        if secret.lower().startswith(_HASH_PREFIX):
            hex_digest = secret[len(_HASH_PREFIX) :]
            if not _HEX_DIGEST.fullmatch(hex_digest):
                raise SettingsError(f"{place}: sha256: must be followed by 64 hex digits")
            digest = bytes.fromhex(hex_digest)
        else:
            if not _B64TOKEN.fullmatch(secret):
                raise SettingsError(
                    f"{place}: a token may hold only letters, digits and - . _ ~ + / (then =)"
                )
            if len(secret) < MIN_TOKEN_LENGTH:
                raise SettingsError(
                    f"{place}: a token must be at least {MIN_TOKEN_LENGTH} characters long"
                )
            digest = hash_token(secret)
            in_clear = True
        if digest in seen:
            raise SettingsError(f"{place}: the same token as {unit} {seen[digest]}")
        seen[digest] = number
        orgs = _orgs(orgs_fields[0], place) if orgs_fields else frozenset()
        if orgs and scope is Scope.INGEST:
            raise SettingsError(
                f"{place}: the ingest token serves every organisation's webhooks; "
                "orgs= applies to read and full tokens"
            )
        name = names[0] if names else f"{where} {unit} {number}"
        tokens.append(ApiToken(scope=scope, digest=digest, name=name, orgs=orgs))
    return tuple(tokens), in_clear


def _orgs(field: str, place: str) -> frozenset[str]:
    listed = field[len(_ORGS_PREFIX) :].split(",")
    if not all(listed):
        raise SettingsError(f"{place}: orgs= must list organisation ids separated by commas")
    orgs = frozenset(listed)
    if len(orgs) != len(listed):
        raise SettingsError(f"{place}: orgs= lists an organisation twice")
    return orgs


def load_access_policy(
    tokens_file: Path | None, *, environ: Mapping[str, str] | None = None
) -> AccessPolicy:
    """The tokens of ``tokens_file`` (if any) and of ``MSGBRIDGE_API_TOKENS`` in ``environ``
    (default: the process environment), if set; :class:`SettingsError` when one is unusable."""
    tokens: list[ApiToken] = []
    if tokens_file is not None:
        where = f"api_tokens_file {tokens_file}"
        try:
            text = tokens_file.read_text(encoding="utf-8")
            mode = tokens_file.stat().st_mode
        except OSError as exc:
            raise SettingsError(f"{where}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{where}: not UTF-8 text") from None
        from_file, in_clear = parse_tokens(text.splitlines(), where=where)
        if in_clear and mode & 0o077:
            logger.warning(
                "the API tokens file holds tokens in clear and others may read it: "
                "store them as sha256:HEX or make the file private (chmod 600)",
                extra={"path": str(tokens_file)},
            )
        tokens.extend(from_file)
    value = (os.environ if environ is None else environ).get(TOKENS_ENV, "")
    if value.strip():
        entries = value.replace(";", "\n").splitlines()
        from_env, _ = parse_tokens(entries, where=TOKENS_ENV, unit="entry")
        known = {token.digest: token.name for token in tokens}
        for token in from_env:
            if token.digest in known:
                raise SettingsError(f"{TOKENS_ENV}: {token.name} repeats {known[token.digest]}")
        tokens.extend(from_env)
    return AccessPolicy(tokens=tuple(tokens))
