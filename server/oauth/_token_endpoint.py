"""Token requests (RFC 6749 §4.1.3, §4.4, §6) made with authlib's httpx OAuth2 client.

:class:`TokenEndpoint` holds one installation's rendered OAuth2 settings and makes the three
requests the gateway needs: client credentials, code exchange (with the PKCE verifier) and
refresh. authlib builds each request and reads each answer; this module only chooses how the
client authenticates, encodes the body as the definition asks, and turns the outcome into a
:class:`TokenSet` or an error:

- an OAuth error answer (``invalid_grant`` …) or any other 4xx: :class:`TokenRefused` (the caller
  decides what it means for the installation);
- 5xx, 408, 429, a timeout, no connection, an answer that is not a token:
  :class:`TokenEndpointUnavailable` (transient);
- an outbound policy refusal: :class:`server.outbound.PolicyRefused`, unchanged.

Client authentication (the plain format leaves it open; chosen here, docs/format.md, "OAuth2"):
with a client secret, a form body uses HTTP Basic (``client_secret_basic``, which RFC 6749 §2.3.1
requires every server to accept) and a JSON body carries ``client_id`` and ``client_secret`` in the
JSON (``client_secret_post``: a JSON token endpoint is outside RFC 6749, and those put them in the
body); without a secret only ``client_id`` is sent (``none``, a public client using PKCE).

The request's ``Content-Type`` is the definition's ``token_parameters.content_type`` exactly
(e.g. ``application/x-www-form-urlencoded;charset=utf-8``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import authlib.deprecate
import httpx

from server.outbound import OutboundError, PolicyRefused

from ..security.secrets import SecretMask
from ._errors import InvalidOAuthSetup, TokenEndpointUnavailable
from ._transport import EXCHANGE_EXTENSION, INTEGRATION_EXTENSION
from ._vault import TokenSet

# authlib ≥ 1.7 announces that its httpx integration will move to "httpx2"; the project uses
# httpx (as the integration still fully supports). The notice is a DeprecationWarning raised at
# import; it is silenced for this one import so that it does not fail warning-strict test runs.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["TokenEndpoint", "TokenRefused"]

logger = logging.getLogger(__name__)


class _WithoutRequestLines(logging.Filter):
    """Drops httpx's "HTTP Request: POST <url> …" lines: a token endpoint's URL is a template and
    may hold a property value (the gateway's own lines name the host only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("HTTP Request:"))


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _WithoutRequestLines) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_WithoutRequestLines())

_UNAVAILABLE_STATUSES = frozenset({408, 425, 429})
_ERROR_CODE = re.compile(r"[\x21-\x7e]{1,64}")
_DESCRIPTION_LIMIT = 200


class TokenRefused(Exception):
    """The token endpoint refused the request; ``summary`` is its error code (and description),
    or its HTTP status, never a secret."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class _BorrowedTransport(httpx.AsyncBaseTransport):
    """The shared transport, lent to one short-lived client that must not close it; each request
    names the ``integration`` it is made for (:data:`INTEGRATION_EXTENSION`)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        integration: str | None,
        exchange: tuple[str, SecretMask] | None = None,
    ) -> None:
        self._inner = inner
        self._integration = integration
        self._exchange = exchange

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._integration is not None:
            request.extensions[INTEGRATION_EXTENSION] = self._integration
        if self._exchange is not None:
            request.extensions[EXCHANGE_EXTENSION] = self._exchange
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


class _EncodedBody(httpx.Auth):
    """Runs authlib's client authentication, then writes the body the way the definition asks:
    the definition's Content-Type, and the form fields as a JSON object when it is JSON."""

    requires_request_body = True

    def __init__(self, client_auth: httpx.Auth, content_type: str, as_json: bool) -> None:
        self._client_auth = client_auth
        self._content_type = content_type
        self._as_json = as_json

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        prepared = next(self._client_auth.auth_flow(request))
        content = prepared.content
        if self._as_json:
            fields = parse_qsl(content.decode("utf-8"), keep_blank_values=True)
            content = json.dumps(dict(fields), ensure_ascii=False).encode("utf-8")
        headers = httpx.Headers(prepared.headers)
        headers["Content-Type"] = self._content_type
        headers["Content-Length"] = str(len(content))
        yield httpx.Request(
            prepared.method,
            prepared.url,
            headers=headers,
            content=content,
            extensions=prepared.extensions,
        )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


def _clean(text: object, mask: SecretMask, limit: int) -> str:
    """Provider text fit for a message: without any secret (masked before it is capped, so
    that the cap cannot leave half a secret), capped, printable."""
    excerpt = mask.excerpt(str(text), limit)
    return "".join(ch if ch.isprintable() else " " for ch in excerpt).strip()


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenEndpoint:
    """One installation's token endpoint, with its rendered client id and secret.

    ``mask`` holds the installation's secrets (:func:`installation_secrets`); each request adds
    its own (client secret, code, verifier, refresh token) to mask the endpoint's error text.
    ``integration`` names the integration the requests are made for (its stand-in, if any,
    receives them: docs/format.md, "Proving a definition"); ``installation_id`` the installation,
    whose exchanges are then kept, masked (docs/operations.md, "Provider exchanges").
    """

    url: str
    client_id: str
    client_secret: str = field(repr=False)
    content_type: str
    transport: httpx.AsyncBaseTransport = field(repr=False)
    timeout_s: float
    clock: Callable[[], float] = time.time
    mask: SecretMask = field(default=SecretMask(), repr=False)
    integration: str | None = None
    installation_id: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    async def client_credentials(self) -> TokenSet:
        """A token for the client itself (RFC 6749 §4.4)."""
        return await self._request(
            "client_credentials",
            lambda client, auth: client.fetch_token(
                self.url, grant_type="client_credentials", auth=auth
            ),
            secrets=(),
        )

    async def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenSet:
        """The tokens for an authorization code (RFC 6749 §4.1.3, with RFC 7636's verifier)."""
        return await self._request(
            "authorization_code",
            lambda client, auth: client.fetch_token(
                self.url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
                auth=auth,
            ),
            secrets=(code, code_verifier),
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens for a refresh token (RFC 6749 §6). When the answer has no refresh token,
        the one used is kept (it stays valid)."""
        tokens = await self._request(
            "refresh_token",
            lambda client, auth: client.refresh_token(
                self.url, refresh_token=refresh_token, auth=auth
            ),
            secrets=(refresh_token,),
        )
        if tokens.refresh_token is None:
            tokens = TokenSet(
                access_token=tokens.access_token,
                refresh_token=refresh_token,
                expires_at=tokens.expires_at,
                token_type=tokens.token_type,
                scope=tokens.scope,
            )
        return tokens

    async def _request(
        self,
        grant: str,
        call: Callable[[AsyncOAuth2Client, httpx.Auth], Awaitable[Mapping[str, Any]]],
        *,
        secrets: tuple[str, ...],
    ) -> TokenSet:
        as_json = _is_json(self.content_type)
        if not self.client_secret:
            method = "none"
        else:
            method = "client_secret_post" if as_json else "client_secret_basic"
        secrets = (*secrets, self.client_secret)
        client = AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=method,
            transport=_BorrowedTransport(
                self.transport,
                self.integration,
                None
                if self.installation_id is None
                else (self.installation_id, self.mask.with_values(secrets)),
            ),
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=False,
            trust_env=False,
        )
        auth = _EncodedBody(client.client_auth(method), self.content_type, as_json)
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await call(client, auth)
        except OAuthError as exc:
            mask = self.mask.with_values(
                (*secrets, f"{self.client_id}:{self.client_secret}" if self.client_secret else None)
            )
            code = mask(str(exc.error)) if _ERROR_CODE.fullmatch(str(exc.error)) else "error"
            description = _clean(exc.description or "", mask, _DESCRIPTION_LIMIT)
            summary = f"{code}: {description}" if description else code
            logger.info("the token endpoint at %s refused a %s request: %s", self.host, grant, code)
            raise TokenRefused(summary) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status >= 500 or status in _UNAVAILABLE_STATUSES:
                raise self._unavailable(grant, f"it answered HTTP {status}") from None
            logger.info(
                "the token endpoint at %s refused a %s request: HTTP %d", self.host, grant, status
            )
            raise TokenRefused(f"HTTP {status}") from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._unavailable(grant, f"no answer ({type(exc).__name__})") from None
        except PolicyRefused:
            raise
        except OutboundError as exc:
            raise self._unavailable(grant, f"no answer ({type(exc).__name__})") from None
        except UnicodeEncodeError:
            raise InvalidOAuthSetup(
                "the OAuth2 client id and secret must be Latin-1 text to be sent with HTTP Basic"
            ) from None
        except ValueError:
            # authlib: a 2xx whose body is not a JSON object.
            raise self._unavailable(grant, "the answer is not a token") from None
        finally:
            await client.aclose()
        return self._token_set(grant, answer)

    def _unavailable(self, grant: str, why: str) -> TokenEndpointUnavailable:
        logger.warning("the token endpoint at %s failed a %s request: %s", self.host, grant, why)
        return TokenEndpointUnavailable(
            f"the OAuth2 token endpoint at {self.host} failed: {why}; try again later"
        )

    def _token_set(self, grant: str, answer: Mapping[str, Any]) -> TokenSet:
        access_token = answer.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._unavailable(grant, "the answer has no access_token")
        refresh_token = answer.get("refresh_token")
        token_type = answer.get("token_type")
        scope = answer.get("scope")
        if isinstance(scope, list | tuple):
            scope = " ".join(str(s) for s in scope)
        return TokenSet(
            access_token=access_token,
            refresh_token=refresh_token
            if isinstance(refresh_token, str) and refresh_token
            else None,
            expires_at=self._expires_at(answer),
            token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
            scope=scope if isinstance(scope, str) else None,
        )

    def _expires_at(self, answer: Mapping[str, Any]) -> int | None:
        # authlib computes expires_at with the wall clock; ours is the injected clock.
        lifetime = _number(answer.get("expires_in"))
        if lifetime is not None:
            return int(self.clock() + lifetime)
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
