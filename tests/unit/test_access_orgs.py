"""Tokens scoped to organisations and durable consumers, without a server: the token file's
``orgs=``, the methods such a token may call, and the checks a handler makes (:class:`Caller`).

The store's part, the event filter's ``orgs``, is in tests/store/test_event_orgs_contract.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgbridge.v1 import gateway_pb2
from server.config import SettingsError
from server.errors import PermissionDenied, Unauthenticated
from server.security.api_access import (
    ORG_SCOPED_METHODS,
    TOKENS_ENV,
    AccessPolicy,
    ApiToken,
    Caller,
    Scope,
    gateway_method,
    hash_token,
    load_access_policy,
    parse_tokens,
)

GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
TOKEN = "scoped-token-0123456789"
DIGEST = hash_token(TOKEN).hex()
STREAM_EVENTS = "/msgbridge.v1.Gateway/StreamEvents"


def bearer(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


def scoped(scope: Scope, *orgs: str, token: str = TOKEN) -> ApiToken:
    return ApiToken(scope=scope, digest=hash_token(token), name="t", orgs=frozenset(orgs))


# --- the token file -----------------------------------------------------------------------------


def test_orgs_may_follow_the_token_with_or_without_a_name_in_any_order() -> None:
    lines = [
        f"read sha256:{DIGEST} reporting orgs=acme,globex",
        "full other-token-0123456789 orgs=acme",
        "full third-token-0123456789 orgs=globex deployer",
        "full fourth-token-0123456789 unscoped",
    ]
    tokens, _ = parse_tokens(lines, where="w")
    assert [(t.scope, t.name, t.orgs) for t in tokens] == [
        (Scope.READ, "reporting", frozenset({"acme", "globex"})),
        (Scope.FULL, "w line 2", frozenset({"acme"})),
        (Scope.FULL, "deployer", frozenset({"globex"})),
        (Scope.FULL, "unscoped", frozenset()),
    ]


def test_orgs_come_from_the_environment_too() -> None:
    environ = {TOKENS_ENV: f"read {TOKEN} orgs=acme; full sha256:{'0' * 64} ops"}
    policy = load_access_policy(None, environ=environ)
    assert [t.orgs for t in policy.tokens] == [frozenset({"acme"}), frozenset()]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"read {TOKEN} orgs=", "w line 1: orgs= must list organisation ids separated by commas"),
        (f"read {TOKEN} orgs=a,,b", "w line 1: orgs= must list organisation ids"),
        (f"read {TOKEN} orgs=a,", "w line 1: orgs= must list organisation ids"),
        (f"read {TOKEN} orgs=a,b,a", "w line 1: orgs= lists an organisation twice"),
        (f"read {TOKEN} orgs=a orgs=b", "w line 1: expected 'SCOPE TOKEN'"),
        (f"read {TOKEN} one orgs=a two", "w line 1: expected 'SCOPE TOKEN'"),
        (f"ingest {TOKEN} orgs=a", "w line 1: the ingest token serves every organisation's"),
    ],
)
def test_an_unusable_orgs_field_is_named_without_the_token(line: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_tokens([line], where="w")
    assert str(caught.value).startswith(message)
    assert TOKEN not in str(caught.value)


# --- which methods a scoped token may call ------------------------------------------------------


def test_a_scoped_token_may_call_the_per_org_methods_only() -> None:
    names = {method.name for method in GATEWAY.methods}
    assert names >= ORG_SCOPED_METHODS
    # What is left holds or changes every organisation's data.
    assert names - ORG_SCOPED_METHODS == {
        "RegisterIntegration",
        "DeleteIntegration",
        "ListUnmatchedWebhooks",
        "ListWebhooks",
        "ReplayWebhook",
    }


@pytest.mark.parametrize("method", sorted(m.name for m in GATEWAY.methods))
def test_the_interceptor_refuses_a_scoped_token_what_is_not_per_org(method: str) -> None:
    token = scoped(Scope.FULL, "acme")
    policy = AccessPolicy(tokens=(token,))
    if method in ORG_SCOPED_METHODS:
        assert policy.authorize(gateway_method(method), bearer(TOKEN)) is token
        return
    with pytest.raises(PermissionDenied) as caught:
        policy.authorize(gateway_method(method), bearer(TOKEN))
    assert caught.value.reason == "ORG_SCOPED_TOKEN"
    assert caught.value.metadata == {"method": gateway_method(method)}
    unscoped = AccessPolicy(tokens=(scoped(Scope.FULL),))
    assert unscoped.authorize(gateway_method(method), bearer(TOKEN)) is not None


def test_a_method_added_later_is_refused_to_a_scoped_token() -> None:
    policy = AccessPolicy(tokens=(scoped(Scope.FULL, "acme"),))
    with pytest.raises(PermissionDenied, match="scoped to organisations"):
        policy.authorize("/msgbridge.v1.Gateway/PurgeEverything", bearer(TOKEN))


# --- the caller -----------------------------------------------------------------------------------


def test_without_tokens_the_caller_may_do_anything() -> None:
    caller = Caller.of(AccessPolicy(), [])
    assert caller.orgs is None
    assert caller.sees("anyone")
    caller.check_org("anyone")
    assert caller.consumer("prod", method=STREAM_EVENTS) == "prod"


def test_the_caller_is_the_token_presented_and_an_unknown_one_is_unauthenticated() -> None:
    token = scoped(Scope.READ, "acme")
    policy = AccessPolicy(tokens=(token,))
    assert Caller.of(policy, bearer(TOKEN)).token is token
    with pytest.raises(Unauthenticated):
        Caller.of(policy, bearer(TOKEN + "x"))
    with pytest.raises(Unauthenticated):
        Caller.of(policy, [])


def test_a_scoped_caller_sees_its_orgs_and_is_refused_others_without_echoing_a_record() -> None:
    caller = Caller(scoped(Scope.FULL, "acme", "globex"))
    assert caller.orgs == frozenset({"acme", "globex"})
    assert caller.sees("acme") and caller.sees("globex") and not caller.sees("initech")
    caller.check_org("acme")
    caller.check_org("")  # nothing named: the handler narrows or refuses
    with pytest.raises(PermissionDenied) as caught:
        caller.check_org("initech")
    assert (caught.value.reason, caught.value.metadata) == ("ORG_NOT_ALLOWED", {"org": "initech"})


def test_only_a_token_that_may_acknowledge_takes_leases() -> None:
    reader = Caller(scoped(Scope.READ))
    with pytest.raises(PermissionDenied) as caught:
        reader.consumer("prod", method=STREAM_EVENTS)
    assert caught.value.reason == "SCOPE_INSUFFICIENT"
    assert caught.value.metadata == {"method": STREAM_EVENTS, "scope": "read", "required": "full"}
    assert "as a durable consumer" in caught.value.message
    with pytest.raises(PermissionDenied):
        Caller(scoped(Scope.READ, "acme")).consumer("prod", method=STREAM_EVENTS)
    assert Caller(scoped(Scope.FULL)).consumer("prod", method=STREAM_EVENTS) == "prod"


def test_a_scoped_callers_consumer_is_kept_apart_per_set_of_orgs() -> None:
    one = Caller(scoped(Scope.FULL, "globex", "acme")).consumer("prod", method=STREAM_EVENTS)
    assert one == "orgs=acme,globex prod"
    same = Caller(scoped(Scope.FULL, "acme", "globex", token="x" * 20))
    assert same.consumer("prod", method=STREAM_EVENTS) == one


org_ids = st.text(
    st.characters(blacklist_categories=["Zs", "Cc"], blacklist_characters=","), min_size=1
)


@given(
    st.frozensets(org_ids, min_size=1, max_size=3),
    st.frozensets(org_ids, min_size=1, max_size=3),
    st.text(),
    st.text(),
)
def test_two_sets_of_orgs_never_share_a_consumer(
    first: frozenset[str], second: frozenset[str], name: str, other_name: str
) -> None:
    a = Caller(scoped(Scope.FULL, *first)).consumer(name, method=STREAM_EVENTS)
    b = Caller(scoped(Scope.FULL, *second)).consumer(other_name, method=STREAM_EVENTS)
    assert (a == b) == (first == second and name == other_name)
