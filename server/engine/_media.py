"""(ext) An inbound message's media (docs/format.md, "Media"): the credentials a media URL is
fetched with, where they may go, the size caps and the media types taken.

A webhook names its media URLs, and anyone who can post to the webhook URL can name any URL: the
credentials of a definition's ``Media.auth`` go only to the hosts of ``Media.hosts`` (https only),
or, without it, to the origins the definition's own requests go to. Every other URL is fetched
without credentials. Pure: the caller fetches, follows redirects (with
:func:`credentials_follow_redirect`) and reads the type from the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._model import Definition, JwtAuth, MediaRules, TokenAuth
from ._render import Value, render_credentials, request_origins
from ._url import ascii_host

__all__ = [
    "content_type_allowed",
    "content_type_pattern_problem",
    "credentials_follow_redirect",
    "host_pattern_problem",
    "media_caps",
    "media_credentials",
    "media_credentials_apply",
    "media_needs_bearer_token",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL with any of these is fetched without credentials: parsers disagree on where its host is.
_AMBIGUOUS = re.compile(r"[\s\x00-\x1f\x7f\\]")
# RFC 6838 restricted-name, case-insensitive
_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"(?P<type>{_NAME})/(?P<subtype>{_NAME})")
_PATTERN = re.compile(rf"{_NAME}/(?:{_NAME}|\*)")


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str  # "http" or "https"
    host: str  # ASCII, lower case, no trailing dot
    port: int  # the scheme's default when the URL gives none


def _origin(url: str) -> _Origin | None:
    """Where ``url`` goes, or None when it is not a plain absolute http(s) URL with a host (no
    user name or password, nothing two URL parsers could read as different hosts)."""
    if _AMBIGUOUS.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or parts.hostname is None:
        return None
    raw = parts.hostname
    host = ascii_host(f"[{raw}]" if ":" in raw else raw)
    if host is None:
        return None
    host = host.lower().removesuffix(".")
    return _Origin(scheme, host, _DEFAULT_PORTS[scheme] if port is None else port)


def _host_matches(pattern: str, host: str) -> bool:
    """``api.twilio.com`` matches that host; ``*.twilio.com`` any host under twilio.com, not
    twilio.com itself."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])  # ".twilio.com": never twilio.com itself
    return host == pattern


def media_credentials_apply(definition: Definition, url: str, values: Mapping[str, Value]) -> bool:
    """Whether a fetch of ``url`` carries the ``Media`` credentials: the definition has some, and
    ``url`` is https on a host of ``Media.hosts`` — or, without ``hosts``, has the very origin
    (scheme, host and port) of one of the definition's own request URLs, rendered with the
    installation's property ``values`` (an http URL only there, as the requests themselves go
    over http)."""
    rules = definition.media
    if rules.auth == "none":
        return False
    if rules.auth == "api" and definition.auth is None and definition.oauth2 is None:
        return False
    target = _origin(url)
    if target is None:
        return False
    if rules.hosts is not None:
        return target.scheme == "https" and any(_host_matches(p, target.host) for p in rules.hosts)
    return any(_origin(own) == target for own in request_origins(definition, values))


def media_needs_bearer_token(definition: Definition) -> bool:
    """Whether the ``Media`` credentials are a bearer token the caller obtains as for a send
    (``"api"`` with an OAuth2 or JWT definition): pass it to :func:`media_credentials`."""
    if definition.media.auth != "api":
        return False
    # (ext) a Token auth's token goes in the headers its use names (not its query parameters)
    return isinstance(definition.auth, JwtAuth | TokenAuth) or (
        definition.auth is None and definition.oauth2 is not None
    )


def media_credentials(
    definition: Definition,
    url: str,
    values: Mapping[str, Value],
    *,
    bearer_token: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The headers a fetch of the media at ``url`` carries: none unless
    :func:`media_credentials_apply`; else ``Media.auth`` rendered with the installation's property
    ``values`` — ``"api"`` as the definition's requests carry their auth (Basic, Bearer, Header;
    for OAuth2 and JWT the ``bearer_token`` the caller obtained, none without one), an auth of
    its own as ``auth`` is rendered. Raises :class:`RenderError` when a value cannot be sent in a
    header (a line break)."""
    if not media_credentials_apply(definition, url, values):
        return ()
    auth = definition.media.auth
    if auth == "api":
        return render_credentials(definition, values, bearer_token=bearer_token)
    assert auth != "none"
    return render_credentials(definition, values, own=auth)


def credentials_follow_redirect(url: str, location: str) -> bool:
    """Whether a redirect from ``url`` to the absolute ``location`` may carry the credentials
    ``url`` was fetched with: only to the same origin (scheme, host and port). A redirect to any
    other host — Twilio's media URLs redirect to a CDN — is fetched without them."""
    here, there = _origin(url), _origin(location)
    return here is not None and here == there


def media_caps(
    rules: MediaRules, *, max_item_bytes: int, max_message_bytes: int
) -> tuple[int, int]:
    """The largest file and the most bytes of one message's media taken: the gateway's caps
    (given) or the definition's, whichever is lower."""
    item = max_item_bytes if rules.max_item_bytes is None else rules.max_item_bytes
    message = max_message_bytes if rules.max_message_bytes is None else rules.max_message_bytes
    return min(item, max_item_bytes), min(message, max_message_bytes)


def content_type_allowed(content_type: str, allowed: Iterable[str]) -> bool:
    """Whether the media type of ``content_type`` (parameters ignored, any case) is one of
    ``allowed``: ``type/subtype`` exactly, or ``type/*`` for any subtype of that type. A
    ``content_type`` that is not a media type is never allowed."""
    found = _MEDIA_TYPE.fullmatch(content_type.split(";", 1)[0].strip().lower())
    if found is None:
        return False
    whole, family = found.group(0), f"{found['type']}/*"
    return any(pattern.lower() in (whole, family) for pattern in allowed)


def content_type_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a ``content_types`` entry (``type/subtype`` or ``type/*``), or
    None."""
    if _PATTERN.fullmatch(pattern.lower()):
        return None
    if ";" in pattern:
        return "write a media type without parameters (image/png, not image/png; q=1)"
    if pattern.startswith("*"):
        return "*/* would take any file: name a type (image/*) or a type and subtype (video/mp4)"
    return "write type/subtype (video/mp4) or type/* (image/*)"


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def host_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a ``hosts`` entry — a host name (``api.twilio.com``), an IP address
    or ``*.`` and a domain of at least two labels (``*.twilio.com``) — or None."""
    if "://" in pattern or any(c in pattern for c in "/?#@:[]"):
        return (
            "write a host name alone (api.twilio.com), with no scheme, port or path: "
            "credentials go over https only"
        )
    name = pattern.lower()
    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    labels = name.split(".")
    if not name.isascii() or not all(_LABEL.fullmatch(label) for label in labels):
        return (
            'write a host name (api.twilio.com) or "*." and a domain (*.twilio.com); a "*" only '
            "opens it, and a non-ASCII name is written in its xn-- form"
        )
    if wildcard and len(labels) < 2:
        return "it takes every host of a top-level domain: name a domain of its own"
    if wildcard and labels[-1].isdigit():
        return '"*." goes with a domain name, not an IP address'
    return None
