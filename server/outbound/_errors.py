"""The outbound client's exceptions. :meth:`OutboundClient.send` raises nothing else.

OutboundError            base; ``may_have_been_sent`` says whether the provider may have the request
 ├── PolicyRefused       the outbound policy refused the address (or host name); no connection made
 ├── InvalidTarget       the URL cannot be called at all (no host, not http/https); nothing sent
 ├── ConnectFailed       DNS failure, connection refused/unreachable, TLS handshake failed: nothing
 │                       was sent, so a retry cannot duplicate a message
 ├── OutboundTimeout     the deadline passed; ``may_have_been_sent`` is False only when it passed
 │                       before a connection was obtained (DNS, connect, waiting for the pool)
 └── TransportError      the connection broke after the request started (reset, closed before or
                         during the answer, malformed HTTP): the provider may have the message

Messages name the host and port, never the URL's path or query (a template may put a secret
there), and never a header or a body.
"""

from __future__ import annotations

__all__ = [
    "ConnectFailed",
    "InvalidTarget",
    "OutboundError",
    "OutboundTimeout",
    "PolicyRefused",
    "TransportError",
]


class OutboundError(Exception):
    """Base of every error the outbound client raises."""

    #: Whether the provider may have received (and acted on) the request. False means a retry
    #: cannot send a message twice.
    may_have_been_sent: bool = False


class PolicyRefused(OutboundError):
    """The outbound policy refused to connect: ``address`` (or the ``host`` name) is not allowed.

    ``reason`` says why (e.g. ``"loopback"``, ``"denied by 10.0.0.0/8"``). No connection was made.
    """

    def __init__(self, *, address: str | None, host: str | None, reason: str) -> None:
        self.address = address
        self.host = host
        self.reason = reason
        target = address if address is not None else host
        via = f" (host {host!r})" if host is not None and address is not None else ""
        super().__init__(
            f"the outbound policy refused {target}{via}: {reason}; an operator may allow it "
            f"with the outbound allow list (--outbound-allow)"
        )


class InvalidTarget(OutboundError):
    """The request's URL cannot be called (no host, a scheme other than http/https)."""


class ConnectFailed(OutboundError):
    """No connection could be made (DNS failure, refused, unreachable, TLS handshake failed).

    Nothing was sent, so retrying cannot duplicate a message.
    """


class OutboundTimeout(OutboundError):
    """The deadline passed before the answer was read.

    ``may_have_been_sent`` is False when the deadline passed before a connection was obtained.
    """

    def __init__(self, message: str, *, may_have_been_sent: bool) -> None:
        self.may_have_been_sent = may_have_been_sent
        super().__init__(message)


class TransportError(OutboundError):
    """The connection broke after the request was started: the provider may have it."""

    may_have_been_sent = True
