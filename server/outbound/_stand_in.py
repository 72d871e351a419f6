"""Stand-ins: one integration's provider calls sent to another base URL, to try a definition
unchanged against a local fake (docs/format.md, "Proving a definition").

A stand-in is given as ``INTEGRATION=URL`` (the ``provider_stand_in`` setting), the URL a bare
``http(s)://host[:port]``. Each call the integration's requests make — its OAuth2 token requests
too — keeps its path and query and takes the stand-in's scheme, host and port; everything else —
method, headers, body, the outbound policy judging the address connected to — stays as it is.
The OAuth2 authorization URL handed to the admin is redirected the same way
(:meth:`server.oauth.OAuthTokens.begin_authorization`). :func:`check_stand_in` refuses, at
start, a stand-in whose host the outbound policy would not let a call reach.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ._errors import PolicyRefused
from ._policy import OutboundPolicy, numeric_host

__all__ = ["StandIn", "check_stand_in", "parse_stand_ins"]

# An integration id (docs/format.md, "The file").
_INTEGRATION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class StandIn:
    """Where one integration's provider calls go instead: ``base`` is ``scheme://host[:port]``."""

    integration: str
    scheme: str
    netloc: str
    host: str

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def redirect(self, url: str) -> str:
        """``url`` with the stand-in's scheme, host and port; its path and query kept."""
        parts = urlsplit(url)
        return urlunsplit((self.scheme, self.netloc, parts.path, parts.query, ""))


def parse_stand_ins(entries: Iterable[str]) -> dict[str, StandIn]:
    """``INTEGRATION=URL`` entries by integration; ValueError names the first unusable one."""
    stand_ins: dict[str, StandIn] = {}
    for entry in entries:
        integration, equals, url = entry.partition("=")
        integration, url = integration.strip(), url.strip()
        if not equals or not _INTEGRATION_ID.match(integration):
            raise ValueError(
                f"{entry!r}: expected INTEGRATION=URL, e.g. demo=http://127.0.0.1:8090"
            )
        if integration in stand_ins:
            raise ValueError(f"{entry!r}: integration {integration!r} has a stand-in already")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"{entry!r}: the URL cannot be parsed") from None
        bare = parts.path in ("", "/") and not (parts.query or parts.fragment)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ValueError(f"{entry!r}: the URL must be http:// or https:// and a host")
        if not bare or url.endswith(("?", "#")):
            raise ValueError(
                f"{entry!r}: give only scheme, host and port (the calls keep their own path and "
                "query)"
            )
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        stand_ins[integration] = StandIn(
            integration=integration,
            scheme=parts.scheme,
            netloc=f"{netloc}:{port}" if port is not None else netloc,
            host=host,
        )
    return stand_ins


async def check_stand_in(stand_in: StandIn, policy: OutboundPolicy) -> None:
    """Return when the policy lets a call reach the stand-in's host (one of its addresses, as at
    connect time); raise :class:`PolicyRefused` otherwise, or OSError when the host has no
    address."""
    address = numeric_host(stand_in.host)
    if address is not None:
        policy.check_address(address)
        return
    policy.check_host(stand_in.host)
    infos = await asyncio.get_running_loop().getaddrinfo(
        stand_in.host, None, type=socket.SOCK_STREAM
    )
    refused: PolicyRefused | None = None
    for info in infos:
        try:
            policy.check_address(str(info[4][0]), host=stand_in.host)
        except PolicyRefused as exc:
            refused = refused or exc
        else:
            return
    if refused is not None:
        raise refused
    raise OSError(f"{stand_in.host} has no address")
