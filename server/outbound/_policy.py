"""The outbound policy against SSRF: which addresses a provider call may connect to.

Provider URLs come from integration definitions and installation properties, which admins and
integration authors control, so by default a provider call may reach only *public unicast*
addresses. The operator widens that with ``allow`` (CIDR networks or host names) and narrows it
with ``deny``; deny wins over allow.

Judging an address:

1. IPv4 inside IPv6 is judged by the IPv4 it carries: IPv4-mapped ``::ffff:a.b.c.d``, the NAT64
   well-known prefix ``64:ff9b::/96`` and 6to4 ``2002::/16`` (the IPv4 in bits 16–48).
2. ``deny``: refused when the host name is denied, or the address (or the IPv4 it carries) lies in
   a denied network.
3. ``allow``: allowed when the host name is allowed (whatever it resolves to), or the address (or
   the IPv4 it carries) lies in an allowed network.
4. Otherwise allowed only if public: not in any special-purpose range of the IANA registries
   (loopback, private, CGNAT, link-local with the cloud metadata address, documentation,
   benchmarking, multicast, reserved, unique-local, ...) and, for IPv6, inside global unicast
   ``2000::/3``. The table is written out here rather than taken from ``ipaddress.is_global``,
   whose answers have changed between Python patch releases.

Numeric hosts in legacy forms (``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1``) are read
the way the operating system reads them (``inet_aton``), by :func:`numeric_host`.

The policy judges addresses; :mod:`server.outbound._client` applies it where the address is the one
connected to (a resolver wrapper, and a last check on every socket before it connects).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from ._errors import PolicyRefused

__all__ = ["IPAddress", "IPNetwork", "OutboundPolicy", "normalize_host_name", "numeric_host"]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IPv4 special-purpose ranges that are not public unicast (RFC 6890 and its updates).
_V4_NOT_PUBLIC: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified ('this network')"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.169.254/32"), "link-local (cloud metadata service)"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

# IPv6 ranges that are not public unicast. The embedding prefixes (IPv4-mapped, NAT64, 6to4) are
# handled before this table; anything outside 2000::/3 is refused after it.
_V6_NOT_PUBLIC: tuple[tuple[IPNetwork, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "IPv4-compatible (deprecated)"),
    (_V6("64:ff9b:1::/48"), "NAT64 local use"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, ORCHID)"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "segment routing (SRv6)"),
    (_V6("fc00::/7"), "unique local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)

_GLOBAL_UNICAST = _V6("2000::/3")
_IPV4_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")

_HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}$")


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host means to the operating system, or None for a host name.

    IPv6 literals (with or without brackets or a zone) and every IPv4 form ``inet_aton`` accepts:
    ``127.0.0.1``, ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``.
    """
    text = host.strip("[]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    if not text or not all(c in "0123456789abcdefxABCDEFX." for c in text):
        return None
    if not text[0].isdigit():  # a name like "cafe" or "add.face", not a number
        return None
    try:
        packed = socket.inet_aton(text)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def normalize_host_name(name: str) -> str:
    """A host name as compared by the policy: lower case, IDNA (punycode), no trailing dot."""
    name = name.strip().rstrip(".").lower()
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _IPV4_MAPPED or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def _not_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not public unicast, or None when it is."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, reason in _V4_NOT_PUBLIC:
            if address in network:
                return reason
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = _not_public_reason(embedded)
        return None if inner is None else f"{inner} (IPv4 {embedded} inside IPv6)"
    for network, reason in _V6_NOT_PUBLIC:
        if address in network:
            return reason
    if address not in _GLOBAL_UNICAST:
        return "reserved (outside global unicast 2000::/3)"
    return None


def _parse_entries(entries: Iterable[str], kind: str) -> tuple[IPNetwork | str, ...]:
    parsed: list[IPNetwork | str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            raise ValueError(f"empty outbound {kind} entry")
        try:
            parsed.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = normalize_host_name(entry)
        if numeric_host(name) is not None or not _HOST_NAME.match(name) or name.isdigit():
            raise ValueError(
                f"outbound {kind} entry {raw!r} is neither a CIDR network, an address nor a "
                "host name (write addresses in dotted or IPv6 form)"
            )
        parsed.append(name)
    return tuple(parsed)


def _name_matches(host: str, patterns: frozenset[str]) -> bool:
    if host in patterns:
        return True
    # "*.example.com" matches any name below example.com (not example.com itself).
    parts = host.split(".")
    return any(f"*.{'.'.join(parts[i:])}" in patterns for i in range(1, len(parts)))


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboundPolicy:
    """Which addresses provider calls may connect to. ``OutboundPolicy()`` allows public only.

    ``allow`` and ``deny`` hold networks (``ipaddress`` networks; an address is a /32 or /128) and
    host names (lower case; ``*.example.com`` matches names below example.com).
    Build one from configuration strings with :meth:`from_strings`.
    """

    allow: tuple[IPNetwork | str, ...] = ()
    deny: tuple[IPNetwork | str, ...] = ()
    _allow_networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _allow_names: frozenset[str] = field(init=False, repr=False, compare=False)
    _deny_networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _deny_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, entries in (("allow", self.allow), ("deny", self.deny)):
            networks = tuple(e for e in entries if not isinstance(e, str))
            names = frozenset(normalize_host_name(e) for e in entries if isinstance(e, str))
            object.__setattr__(self, f"_{name}_networks", networks)
            object.__setattr__(self, f"_{name}_names", names)

    @classmethod
    def from_strings(cls, *, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> OutboundPolicy:
        """Parse ``--outbound-allow`` / ``--outbound-deny`` style entries.

        Each entry is a CIDR network (``10.0.0.0/8``, ``fd00::/8``), an address (``127.0.0.1``,
        ``::1``) or a host name (``localhost``, ``*.internal.example``). Raises ValueError naming
        the first entry that is none of these.
        """
        return cls(allow=_parse_entries(allow, "allow"), deny=_parse_entries(deny, "deny"))

    def check_host(self, host: str) -> None:
        """Refuse a host name the operator denied, before it is even resolved."""
        name = normalize_host_name(host)
        if self._deny_names and _name_matches(name, self._deny_names):
            raise PolicyRefused(address=None, host=name, reason="host name denied by the operator")

    def check_address(self, address: IPAddress | str, *, host: str | None = None) -> None:
        """Return if a connection to ``address`` (resolved from ``host``, if given) is allowed;
        raise :class:`PolicyRefused` naming the address and the reason otherwise."""
        ip = address if not isinstance(address, str) else _parse_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(int(ip))
        name = normalize_host_name(host) if host is not None else None
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
            candidates.append(inner)

        if name is not None:
            self.check_host(name)
        for network in self._deny_networks:
            if any(a.version == network.version and a in network for a in candidates):
                raise PolicyRefused(
                    address=str(ip), host=name, reason=f"denied by the operator ({network})"
                )
        if name is not None and self._allow_names and _name_matches(name, self._allow_names):
            return
        for network in self._allow_networks:
            if any(a.version == network.version and a in network for a in candidates):
                return
        reason = _not_public_reason(ip)
        if reason is not None:
            raise PolicyRefused(
                address=str(ip), host=name, reason=f"not a public address: {reason}"
            )


def _parse_address(text: str) -> IPAddress:
    address = numeric_host(text)
    if address is None:
        raise ValueError(f"not an IP address: {text!r}")
    return address
