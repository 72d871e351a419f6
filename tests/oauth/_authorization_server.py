"""A real OAuth2 authorization server for the tests: authlib's AuthorizationServer and grants
(authorization code with PKCE, client credentials, refresh token) behind a small aiohttp adapter,
on 127.0.0.1, port 0.

authlib ships server integrations for Flask and Django only; the adapter here is what such an
integration provides: an OAuth2Request built from the HTTP request (a JSON body is read as the
form, so that a token endpoint that takes JSON can be served), and an HTTP response from authlib's
``(status, body, headers)``.

Endpoints: ``GET /authorize`` (the consent page), ``POST /authorize`` (``confirm=yes`` approves as
the user "alice", anything else denies), ``POST /token``, ``GET /api`` (a protected resource that
answers 401 to an unknown, expired or revoked access token). Knobs for tests:
``rotate_refresh_tokens``, ``expires_in``, ``fail_status`` (answer every token request with this
status), ``hold()`` / ``release()`` (keep token requests waiting), ``revoke_access_tokens()``,
``revoke_refresh_tokens()``. ``token_requests`` records every token request seen.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Payload,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge

USER = "alice"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class RefreshToken(TokenMixin):  # type: ignore[misc]
    token: str
    client_id: str
    scope: str
    user: str
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass
class AccessToken:
    token: str
    client_id: str
    expires_at: float | None
    revoked: bool = False


@dataclass(frozen=True)
class TokenRequest:
    """One request seen at the token endpoint."""

    grant_type: str | None
    content_type: str
    basic_auth: bool
    form: dict[str, str]


@dataclass
class _Incoming:
    method: str
    url: str
    headers: Any
    args: list[tuple[str, str]]
    form: list[tuple[str, str]]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: _Incoming) -> None:
        super().__init__(method=incoming.method, uri=incoming.url, headers=incoming.headers)
        self._args = dict(incoming.args)
        self._form = dict(incoming.form)
        self.payload = _Payload([*incoming.args, *incoming.form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: _Request) -> None:
        data = request.payload.data
        self.server.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            user=request.user,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        found = self.server.codes.get(code)
        if found is not None and found.client_id == client.client_id:
            return found
        return None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.server.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.user


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class _RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @property  # type: ignore[override]
    def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:  # authlib's name
        return bool(self.server.rotate_refresh_tokens)

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        found = self.server.refresh_tokens.get(refresh_token)
        if found is not None and not found.revoked:
            return found
        return None

    def authenticate_user(self, refresh_token: RefreshToken) -> str:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        if self.server.rotate_refresh_tokens:
            refresh_token.revoked = True


class TestAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's AuthorizationServer with in-memory clients, codes and tokens."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.token_requests: list[TokenRequest] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.rotate_refresh_tokens = True
        self.expires_in: int | None = 3600
        self.fail_status: int | None = None
        self.token_request_arrived = asyncio.Event()
        self._gate: asyncio.Event | None = None
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: "at-" + generate_token(40),
                refresh_token_generator=lambda **_: "rt-" + generate_token(40),
                expires_generator=lambda client, grant_type: self.expires_in or 0,
            ),
        )
        self.register_grant(_CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(_ClientCredentialsGrant)
        self.register_grant(_RefreshGrant)

    # -- authlib's framework hooks --------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        expires_in = token.get("expires_in")
        self.access_tokens[token["access_token"]] = AccessToken(
            token=token["access_token"],
            client_id=request.client.client_id,
            expires_at=time.time() + expires_in if expires_in else None,
        )
        if "refresh_token" in token:
            self.refresh_tokens[token["refresh_token"]] = RefreshToken(
                token=token["refresh_token"],
                client_id=request.client.client_id,
                scope=token.get("scope", ""),
                user=request.user,
            )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: _Incoming | _Request) -> _Request:
        return request if isinstance(request, _Request) else _Request(request)

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> web.Response:
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        if isinstance(body, dict):
            return web.json_response(body, status=status, headers=dict(headers))
        return web.Response(status=status, text=body or "", headers=dict(headers))

    # -- knobs ------------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, *redirect_uris: str) -> Client:
        client = Client(client_id, client_secret, tuple(redirect_uris))
        self.clients[client_id] = client
        return client

    def hold(self) -> None:
        """Keep token requests waiting (after they are recorded) until :meth:`release`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def revoke_access_tokens(self) -> None:
        for token in self.access_tokens.values():
            token.revoked = True

    def revoke_refresh_tokens(self) -> None:
        for token in self.refresh_tokens.values():
            token.revoked = True

    def requests_of(self, grant_type: str) -> list[TokenRequest]:
        return [r for r in self.token_requests if r.grant_type == grant_type]

    # -- the HTTP side ----------------------------------------------------------------------

    async def _incoming(self, request: web.Request) -> _Incoming:
        form: list[tuple[str, str]] = []
        if request.method == "POST":
            raw = await request.read()
            if request.content_type.endswith("json"):
                form = [(str(k), str(v)) for k, v in json.loads(raw).items()]
            else:
                form = parse_qsl(raw.decode(), keep_blank_values=True)
        return _Incoming(
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            args=list(request.query.items()),
            form=form,
        )

    async def authorize(self, request: web.Request) -> web.Response:
        incoming = await self._incoming(request)
        self.authorize_requests.append(dict(incoming.args))
        try:
            grant = self.get_consent_grant(incoming)
        except OAuth2Error as error:
            return web.json_response(dict(error.get_body()), status=400)
        if request.method == "GET":
            return web.Response(
                content_type="text/html",
                text=f"<form method='post'>Allow {grant.client.client_id}?"
                "<button name='confirm' value='yes'>Allow</button></form>",
            )
        user = USER if dict(incoming.form).get("confirm") == "yes" else None
        response: web.Response = self.create_authorization_response(
            incoming, grant_user=user, grant=grant
        )
        return response

    async def token(self, request: web.Request) -> web.Response:
        incoming = await self._incoming(request)
        self.token_requests.append(
            TokenRequest(
                grant_type=dict(incoming.form).get("grant_type"),
                content_type=request.headers.get("Content-Type", ""),
                basic_auth=request.headers.get("Authorization", "").startswith("Basic "),
                form=dict(incoming.form),
            )
        )
        self.token_request_arrived.set()
        if self._gate is not None:
            await self._gate.wait()
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="unavailable")
        response: web.Response = self.create_token_response(incoming)
        return response

    async def api(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        found = self.access_tokens.get(header.removeprefix("Bearer "))
        if (
            not header.startswith("Bearer ")
            or found is None
            or found.revoked
            or (found.expires_at is not None and found.expires_at < time.time())
        ):
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True, "client": found.client_id})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/api", self.api)
        return app


@dataclass
class RunningAuthorizationServer:
    server: TestAuthorizationServer
    runner: web.AppRunner
    port: int
    base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.port}"


async def start_authorization_server() -> RunningAuthorizationServer:
    server = TestAuthorizationServer()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return RunningAuthorizationServer(server=server, runner=runner, port=port)
