"""The OAuth2 callback: the provider sends the admin back here after consent (docs/format.md,
"OAuth2", flow ``"0"``).

The sidecar forwards it like a webhook (its path is the sidecar's ``/oauth/callback``); the
answer is a small HTML page, for the admin's browser.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from ..errors import GatewayError
from ..sidecar import Delivery, Verdict
from ._provider_credentials import InstallationAuth

__all__ = ["OAuthCallback"]

logger = logging.getLogger(__name__)

_NOT_FOUND = Verdict(http_status=404, body=b"not found", content_type="text/plain; charset=utf-8")


def _page(status: int, title: str, text: str) -> Verdict:
    body = "<!doctype html><meta charset=utf-8><title>{0}</title><h1>{0}</h1><p>{1}</p>".format(
        html.escape(title), html.escape(text)
    )
    return Verdict(http_status=status, body=body.encode(), content_type="text/html; charset=utf-8")


class OAuthCallback:
    """Completes an installation's authorization from the provider's redirect.

    ``on_authorized`` is called with the installation's id once it is authorized (what waited
    for its access token, such as a failed subscription, may go on).
    """

    def __init__(
        self, *, auth: InstallationAuth, on_authorized: Callable[[str], Awaitable[None]]
    ) -> None:
        self._auth = auth
        self._on_authorized = on_authorized

    async def handle(self, delivery: Delivery) -> Verdict:
        if delivery.method.upper() != "GET":
            return _NOT_FOUND
        query = dict(parse_qsl(delivery.query, keep_blank_values=True))
        try:
            installation_id = await self._auth.complete(
                query.get("state", ""), query.get("code"), query.get("error")
            )
        except GatewayError as exc:
            logger.warning("authorization not completed", extra={"reason": exc.reason})
            return _page(400, "Authorization failed", exc.message)
        logger.info("installation authorized", extra={"installation": installation_id})
        await self._on_authorized(installation_id)
        return _page(200, "Authorized", "msgbridge can now send for this installation.")
