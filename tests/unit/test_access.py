"""API access without a server: the method table, token decisions, token files, TLS files and the
listening rule."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from hypothesis import example, given, settings
from hypothesis import strategies as st

from msgbridge.v1 import gateway_pb2, ingest_pb2
from server.config import SettingsError
from server.errors import GatewayError, PermissionDenied, Unauthenticated
from server.security.api_access import (
    READ_METHODS,
    TOKENS_ENV,
    AccessPolicy,
    ApiAccess,
    ApiToken,
    Requirement,
    Scope,
    check_exposure,
    hash_token,
    is_loopback_listen,
    load_access_policy,
    load_server_credentials,
    parse_tokens,
    required_access,
)

GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
INGEST = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"]

READ_TOKEN = "read-token-0123456789"
FULL_TOKEN = "full-token-0123456789"
INGEST_TOKEN = "ingest-token-0123456789"


def gateway(method: str) -> str:
    return f"/msgbridge.v1.Gateway/{method}"


INGEST_WEBHOOK = "/msgbridge.v1.Ingest/IngestWebhook"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy(
        tokens=(
            ApiToken(scope=Scope.READ, digest=hash_token(READ_TOKEN), name="reader"),
            ApiToken(scope=Scope.FULL, digest=hash_token(FULL_TOKEN), name="admin"),
            ApiToken(scope=Scope.INGEST, digest=hash_token(INGEST_TOKEN), name="sidecar"),
        )
    )


def bearer(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


# --- which methods need what -------------------------------------------------------------------


def test_the_read_methods_are_the_gateways_gets_lists_and_stream() -> None:
    names = {method.name for method in GATEWAY.methods}
    expected = {n for n in names if n.startswith(("Get", "List"))} | {"StreamEvents"}
    assert expected == READ_METHODS


def test_every_gateway_method_needs_read_or_write_and_ingest_needs_ingest() -> None:
    for method in GATEWAY.methods:
        need = required_access(gateway(method.name))
        assert need is (Requirement.READ if method.name in READ_METHODS else Requirement.WRITE)
    for method in INGEST.methods:
        assert required_access(f"/msgbridge.v1.Ingest/{method.name}") is Requirement.INGEST
    assert required_access(gateway("SendMessage")) is Requirement.WRITE
    assert required_access(gateway("AckEvents")) is Requirement.WRITE


@pytest.mark.parametrize(
    "method",
    [
        HEALTH_CHECK,
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
)
def test_health_and_reflection_are_open(method: str) -> None:
    assert required_access(method) is Requirement.OPEN


@pytest.mark.parametrize(
    "method",
    [gateway("GetEverything"), "/msgbridge.v2.Admin/Wipe", "/grpc.health.v1.Healthy/Check", "x"],
)
def test_a_method_not_in_the_table_needs_a_full_token(method: str) -> None:
    assert required_access(method) is Requirement.WRITE


# --- deciding one call -------------------------------------------------------------------------

ALLOWED = {
    Scope.READ: {gateway("GetIntegration"), gateway("ListEvents"), gateway("StreamEvents")},
    Scope.FULL: {
        gateway("GetIntegration"),
        gateway("ListEvents"),
        gateway("StreamEvents"),
        gateway("SendMessage"),
        gateway("RegisterIntegration"),
        gateway("AckEvents"),
    },
    Scope.INGEST: {INGEST_WEBHOOK},
}
METHODS = sorted(set().union(*ALLOWED.values()))
TOKEN_OF = {Scope.READ: READ_TOKEN, Scope.FULL: FULL_TOKEN, Scope.INGEST: INGEST_TOKEN}


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("method", METHODS)
def test_a_scope_allows_its_methods_and_denies_the_others(
    policy: AccessPolicy, scope: Scope, method: str
) -> None:
    if method in ALLOWED[scope]:
        caller = policy.authorize(method, bearer(TOKEN_OF[scope]))
        assert caller is not None
        assert caller.scope is scope
        return
    with pytest.raises(PermissionDenied) as caught:
        policy.authorize(method, bearer(TOKEN_OF[scope]))
    assert caught.value.reason == "SCOPE_INSUFFICIENT"
    assert caught.value.metadata["scope"] == scope.value
    assert caught.value.metadata["method"] == method
    assert TOKEN_OF[scope] not in caught.value.message


def test_the_refusal_names_the_scope_needed(policy: AccessPolicy) -> None:
    with pytest.raises(PermissionDenied) as caught:
        policy.authorize(gateway("SendMessage"), bearer(READ_TOKEN))
    assert caught.value.message == "a read token cannot call SendMessage: it needs a full token"
    assert caught.value.metadata["required"] == "full"
    with pytest.raises(PermissionDenied) as caught:
        policy.authorize(INGEST_WEBHOOK, bearer(FULL_TOKEN))
    assert caught.value.metadata["required"] == "ingest"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([], "TOKEN_MISSING"),
        ([("x-api-key", FULL_TOKEN)], "TOKEN_MISSING"),
        ([("authorization", f"Basic {FULL_TOKEN}")], "TOKEN_MALFORMED"),
        ([("authorization", "Bearer")], "TOKEN_MALFORMED"),
        ([("authorization", "Bearer   ")], "TOKEN_MALFORMED"),
        ([("authorization", FULL_TOKEN)], "TOKEN_MALFORMED"),
        (bearer(FULL_TOKEN) + bearer(FULL_TOKEN), "TOKEN_MALFORMED"),
        (bearer(FULL_TOKEN + "x"), "TOKEN_UNKNOWN"),
        (bearer(FULL_TOKEN[:-1]), "TOKEN_UNKNOWN"),
        (bearer(hash_token(FULL_TOKEN).hex()), "TOKEN_UNKNOWN"),
        (bearer("sha256:" + hash_token(FULL_TOKEN).hex()), "TOKEN_UNKNOWN"),
    ],
)
def test_a_missing_malformed_or_unknown_token_is_unauthenticated(
    policy: AccessPolicy, metadata: list[tuple[str, str | bytes]], reason: str
) -> None:
    for method in (gateway("GetIntegration"), gateway("SendMessage"), INGEST_WEBHOOK):
        with pytest.raises(Unauthenticated) as caught:
            policy.authorize(method, metadata)
        assert caught.value.reason == reason
        assert FULL_TOKEN not in caught.value.message


def test_the_scheme_is_case_insensitive_and_spaces_around_are_ignored(
    policy: AccessPolicy,
) -> None:
    for value in (f"bearer {FULL_TOKEN}", f"BEARER  {FULL_TOKEN} ", f" Bearer {FULL_TOKEN}"):
        caller = policy.authorize(gateway("SendMessage"), [("Authorization", value)])
        assert caller is not None
        assert caller.name == "admin"


def test_open_methods_need_no_token_and_ignore_a_wrong_one(policy: AccessPolicy) -> None:
    assert policy.authorize(HEALTH_CHECK, []) is None
    assert policy.authorize(HEALTH_CHECK, bearer("nonsense")) is None


def test_without_tokens_nothing_is_enforced() -> None:
    open_policy = AccessPolicy()
    assert not open_policy.enforced
    for method in (gateway("SendMessage"), INGEST_WEBHOOK, "/any.Service/Method"):
        assert open_policy.authorize(method, []) is None
        assert open_policy.authorize(method, bearer("anything")) is None


def test_an_ingest_token_alone_enforces_tokens_everywhere() -> None:
    only_ingest = AccessPolicy(
        tokens=(ApiToken(scope=Scope.INGEST, digest=hash_token(INGEST_TOKEN), name="sidecar"),)
    )
    assert only_ingest.enforced
    with pytest.raises(Unauthenticated):
        only_ingest.authorize(gateway("ListIntegrations"), [])
    assert only_ingest.authorize(INGEST_WEBHOOK, bearer(INGEST_TOKEN)) is not None


def test_a_token_repr_never_shows_its_digest(policy: AccessPolicy) -> None:
    assert hash_token(FULL_TOKEN).hex() not in repr(policy)
    assert "digest" not in repr(policy.tokens[0])


@settings(max_examples=150)
@example(token=FULL_TOKEN)
@given(token=st.text(min_size=1, max_size=60).filter(lambda t: t.strip() == t and t != ""))
def test_only_the_configured_tokens_are_accepted(token: str) -> None:
    policy = AccessPolicy(
        tokens=(ApiToken(scope=Scope.FULL, digest=hash_token(FULL_TOKEN), name="admin"),)
    )
    metadata: list[tuple[str, str | bytes]] = [("authorization", f"Bearer {token}")]
    try:
        caller = policy.authorize(gateway("SendMessage"), metadata)
    except GatewayError as error:
        assert isinstance(error, Unauthenticated)
        assert token != FULL_TOKEN
    else:
        assert token == FULL_TOKEN
        assert caller is not None


# --- token files and the environment -----------------------------------------------------------


def test_a_token_file_holds_scopes_tokens_hashes_names_and_comments() -> None:
    full = secrets.token_urlsafe(24)
    lines = [
        "# who may call",
        "",
        f"read {READ_TOKEN}",
        f"  FULL   sha256:{hash_token(full).hex().upper()}   deployer  ",
        f"ingest {INGEST_TOKEN} sidecar",
    ]
    tokens, in_clear = parse_tokens(lines, where="api_tokens_file t")
    assert in_clear
    assert [(t.scope, t.name) for t in tokens] == [
        (Scope.READ, "api_tokens_file t line 3"),
        (Scope.FULL, "deployer"),
        (Scope.INGEST, "sidecar"),
    ]
    policy = AccessPolicy(tokens=tokens)
    assert [policy.identify(t) for t in (READ_TOKEN, full, INGEST_TOKEN)] == list(tokens)
    only_hashed, in_clear = parse_tokens([lines[3]], where="w")
    assert not in_clear
    assert only_hashed[0].digest == hash_token(full)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"admin {FULL_TOKEN}", "w line 1: unknown scope 'admin' (expected one of read, full"),
        (FULL_TOKEN, "w line 1: expected 'SCOPE TOKEN' or 'SCOPE sha256:HEX'"),
        (f"full {FULL_TOKEN} name extra", "w line 1: expected 'SCOPE TOKEN'"),
        ("full short-token", "w line 1: a token must be at least 16 characters long"),
        ("full " + "é" * 20, "w line 1: a token may hold only letters, digits"),
        ('full "quoted-token-0123456789"', "w line 1: a token may hold only letters"),
        ("full sha256:abcd", "w line 1: sha256: must be followed by 64 hex digits"),
        ("full sha256:" + "g" * 64, "w line 1: sha256: must be followed by 64 hex digits"),
    ],
)
def test_an_unusable_line_is_named_without_its_token(line: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_tokens([line], where="w")
    assert str(caught.value).startswith(message)
    secret = line.split()[1] if len(line.split()) > 1 else line
    assert secret not in str(caught.value)


def test_a_token_given_twice_is_refused() -> None:
    lines = [f"read {FULL_TOKEN}", f"full sha256:{hash_token(FULL_TOKEN).hex()}"]
    with pytest.raises(SettingsError, match=r"^w line 2: the same token as line 1$"):
        parse_tokens(lines, where="w")


def test_tokens_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"full sha256:{hash_token(FULL_TOKEN).hex()}\n", encoding="utf-8")
    file.chmod(0o600)
    environ = {TOKENS_ENV: f"read {READ_TOKEN}; ingest {INGEST_TOKEN} sidecar"}
    policy = load_access_policy(file, environ=environ)
    assert [t.scope for t in policy.tokens] == [Scope.FULL, Scope.READ, Scope.INGEST]
    assert policy.tokens[1].name == f"{TOKENS_ENV} entry 1"
    assert load_access_policy(None, environ={}) == AccessPolicy()
    assert load_access_policy(None, environ={TOKENS_ENV: " "}) == AccessPolicy()


def test_the_same_token_in_the_file_and_the_environment_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"full {FULL_TOKEN}\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=TOKENS_ENV):
        load_access_policy(file, environ={TOKENS_ENV: f"read {FULL_TOKEN}"})


def test_a_token_file_that_cannot_be_read_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"api_tokens_file .*missing: No such file"):
        load_access_policy(tmp_path / "missing", environ={})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe full")
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_access_policy(binary, environ={})


def test_tokens_in_clear_in_a_file_others_can_read_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"full {FULL_TOKEN}\n", encoding="utf-8")
    file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="server.security.api_access"):
        load_access_policy(file, environ={})
    assert [r.getMessage() for r in caplog.records if "in clear" in r.getMessage()]
    assert FULL_TOKEN not in caplog.text

    caplog.clear()
    file.write_text(f"full sha256:{hash_token(FULL_TOKEN).hex()}\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="server.security.api_access"):
        load_access_policy(file, environ={})
    assert caplog.records == []


# --- the listening rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.8.9.10:0", True),
        ("localhost:50051", True),
        ("LOCALHOST:1", True),
        ("[::1]:50051", True),
        ("[::ffff:127.0.0.1]:50051", True),
        ("unix:/run/msgbridge.sock", True),
        ("unix-abstract:msgbridge", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("[::ffff:10.0.0.5]:50051", False),
        ("[fe80::1%eth0]:50051", False),
        ("gateway.internal:50051", False),
        ("localhost.example.com:50051", False),
    ],
)
def test_loopback_listen_addresses(listen: str, loopback: bool) -> None:
    assert is_loopback_listen(listen) is loopback


def test_an_exposed_address_without_tls_or_tokens_is_refused() -> None:
    for listen in ("0.0.0.0:50051", "[::]:50051", "gateway.internal:50051"):
        with pytest.raises(SettingsError) as caught:
            check_exposure(listen=listen, tls=False, tokens=False, insecure=False)
        message = str(caught.value)
        assert message.startswith(f"grpc_listen: refusing to serve the API on {listen}")
        assert "--insecure" in message
        assert "--api-tokens-file" in message


@pytest.mark.parametrize(
    ("tls", "tokens", "insecure"),
    [(True, False, False), (False, True, False), (False, False, True), (True, True, True)],
)
def test_an_exposed_address_is_allowed_with_tls_tokens_or_insecure(
    tls: bool, tokens: bool, insecure: bool
) -> None:
    check_exposure(listen="0.0.0.0:50051", tls=tls, tokens=tokens, insecure=insecure)


def test_loopback_is_always_allowed() -> None:
    for listen in ("127.0.0.1:50051", "[::1]:0", "localhost:50051"):
        check_exposure(listen=listen, tls=False, tokens=False, insecure=False)


# --- TLS files ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Pem:
    cert: Path
    key: Path
    ca: Path


@pytest.fixture
def pem(tmp_path: Path) -> Pem:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    pem = Pem(cert=tmp_path / "cert.pem", key=tmp_path / "key.pem", ca=tmp_path / "ca.pem")
    pem.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(pem.key))
    ca.cert_pem.write_to_path(str(pem.ca))
    return pem


def test_tls_credentials_from_pem_files(pem: Pem) -> None:
    assert load_server_credentials(cert=pem.cert, key=pem.key) is not None
    assert load_server_credentials(cert=pem.cert, key=pem.key, client_ca=pem.ca) is not None


def test_unusable_tls_files_are_settings_errors(pem: Pem, tmp_path: Path) -> None:
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(other_key))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    cases = [
        ({"cert": tmp_path / "none.pem", "key": pem.key}, r"^tls_cert: .*none\.pem: No such file"),
        ({"cert": garbage, "key": pem.key}, r"^tls_cert: .*garbage\.pem holds no PEM certificate"),
        ({"cert": pem.cert, "key": garbage}, r"^tls_key: .* holds no unencrypted PEM private key"),
        ({"cert": pem.cert, "key": other_key}, r"^tls_key: .*other\.key is not the key of the"),
        ({"cert": pem.key, "key": pem.key}, r"^tls_cert: .* holds no PEM certificate"),
        (
            {"cert": pem.cert, "key": pem.key, "client_ca": garbage},
            r"^tls_client_ca: .* holds no PEM certificate",
        ),
    ]
    for arguments, message in cases:
        with pytest.raises(SettingsError, match=message):
            load_server_credentials(**arguments)


# --- all of it from the settings ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Options:
    grpc_listen: str = "127.0.0.1:50051"
    insecure: bool = False
    api_tokens_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None


def test_by_default_access_is_open_plaintext_on_loopback() -> None:
    access = ApiAccess.from_settings(Options(), environ={})
    assert access == ApiAccess()
    assert access.interceptors() == []
    assert access.credentials is None


def test_tokens_install_the_interceptor() -> None:
    access = ApiAccess.from_settings(Options(), environ={TOKENS_ENV: f"full {FULL_TOKEN}"})
    assert access.policy.enforced
    assert len(access.interceptors()) == 1
    assert FULL_TOKEN not in repr(access)


def test_tls_settings_must_come_together(pem: Pem) -> None:
    with pytest.raises(SettingsError, match="tls_cert and tls_key: give both"):
        ApiAccess.from_settings(Options(tls_cert=pem.cert), environ={})
    with pytest.raises(SettingsError, match="tls_cert and tls_key: give both"):
        ApiAccess.from_settings(Options(tls_key=pem.key), environ={})
    with pytest.raises(SettingsError, match="tls_client_ca: mutual TLS needs"):
        ApiAccess.from_settings(Options(tls_client_ca=pem.ca), environ={})
    mutual = ApiAccess.from_settings(
        Options(tls_cert=pem.cert, tls_key=pem.key, tls_client_ca=pem.ca), environ={}
    )
    assert mutual.mutual_tls
    assert mutual.credentials is not None


def test_the_listening_rule_applies_to_the_settings(
    pem: Pem, caplog: pytest.LogCaptureFixture
) -> None:
    exposed = "0.0.0.0:50051"
    with pytest.raises(SettingsError, match=r"refusing to serve the API on 0\.0\.0\.0:50051"):
        ApiAccess.from_settings(Options(grpc_listen=exposed), environ={})
    with caplog.at_level(logging.WARNING, logger="server.security.api_access"):
        ApiAccess.from_settings(Options(grpc_listen=exposed, insecure=True), environ={})
    assert any("without TLS or tokens" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="server.security.api_access"):
        ApiAccess.from_settings(
            Options(grpc_listen=exposed, tls_cert=pem.cert, tls_key=pem.key), environ={}
        )
    assert any("with TLS but without tokens" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="server.security.api_access"):
        ApiAccess.from_settings(
            Options(grpc_listen=exposed), environ={TOKENS_ENV: f"read {READ_TOKEN}"}
        )
    assert caplog.records == []
