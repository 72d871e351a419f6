"""The listening rule: the API is not exposed beyond this host by accident.

Without TLS or tokens, anyone who can reach the gRPC port can send messages as any organisation
and read their events. So an address other than loopback needs TLS or tokens, or the operator's
explicit ``--insecure``.
"""

from __future__ import annotations

import ipaddress

from ...config import SettingsError

__all__ = ["check_exposure", "is_loopback_listen"]

_LOCAL_SCHEMES = ("unix:", "unix-abstract:")


def is_loopback_listen(listen: str) -> bool:
    """Whether the gRPC listen address ``listen`` is reachable from this host only.

    Loopback addresses (``127.0.0.0/8``, ``::1``, IPv4-mapped loopback), ``localhost`` and Unix
    sockets are; wildcard addresses (``0.0.0.0``, ``[::]``), other addresses and other host names
    (which are not resolved here) are not.
    """
    if listen.startswith(_LOCAL_SCHEMES):
        return True
    host = listen.rpartition(":")[0] if ":" in listen else listen
    host = host.removeprefix("[").removesuffix("]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_exposure(*, listen: str, tls: bool, tokens: bool, insecure: bool) -> None:
    """Raise :class:`SettingsError` if ``listen`` exposes the API unprotected without consent.

    Allowed: a loopback address always; any address with TLS or tokens, or with ``insecure``.
    """
    if tls or tokens or insecure or is_loopback_listen(listen):
        return
    raise SettingsError(
        f"grpc_listen: refusing to serve the API on {listen}, which is not a loopback address, "
        "without TLS or API tokens: anyone who reaches it could send messages and read events. "
        "Give --tls-cert and --tls-key, or --api-tokens-file, or listen on 127.0.0.1, "
        "or pass --insecure to accept the exposure"
    )
