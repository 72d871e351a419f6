"""SecretMask on its own: every form a provider may echo a secret in is masked, short values and
ordinary text are left alone, and a text cut short never keeps the start of a secret."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.engine import load_definition
from server.oauth import installation_secrets
from server.security.secrets import MASK, SecretMask

SECRET = "SECRETVALUE-XYZ-123"
ODD = 'p/a ss+w"é&<ü>\\😀'  # a value with every character an encoder may rewrite


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "echoed",
    [
        SECRET,
        quote(SECRET, safe=""),
        "SECRETVALUE%2dXYZ%2D123",  # percent-encoded in either hex case
        json.dumps(SECRET)[1:-1],
        b64(SECRET),
        b64(SECRET).rstrip("="),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
    ],
)
def test_a_secret_is_masked_in_each_form(echoed: str) -> None:
    mask = SecretMask.of([SECRET])
    masked = mask(f"Authorization: Bearer {echoed}; bad key")
    assert masked.startswith(f"Authorization: Bearer {MASK}")
    assert masked.endswith("; bad key")
    assert "SECRETVALUE" not in masked and "XYZ" not in masked


@pytest.mark.parametrize(
    "echoed",
    [
        ODD,
        quote(ODD, safe=""),
        quote(ODD, safe="/"),
        quote(ODD, safe="").lower(),
        quote_plus(ODD),
        json.dumps(ODD)[1:-1],
        json.dumps(ODD, ensure_ascii=False)[1:-1],
        json.dumps(ODD).replace("/", "\\/")[1:-1],
        html.escape(ODD),
        "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in ODD),
        base64.b64encode(ODD.encode()).decode(),
    ],
)
def test_a_value_with_characters_an_encoder_rewrites_is_masked_in_each_encoding(
    echoed: str,
) -> None:
    assert SecretMask.of([ODD])(f"<{echoed}>") == f"<{MASK}>"


def test_basic_credentials_are_masked_as_base64_of_user_colon_password() -> None:
    mask = SecretMask.of(["AC-user-1:pass-word-2"])
    header = "Basic " + b64("AC-user-1:pass-word-2")
    assert mask(f"you sent {header}") == f"you sent Basic {MASK}"


def test_short_values_and_ordinary_text_are_left_alone() -> None:
    mask = SecretMask.of(["us", "", None, "key"])
    text = "us: the key is fine"
    assert mask(text) == text
    assert SecretMask.of([])(text) == text


def test_overlapping_and_nested_secrets_leave_no_piece() -> None:
    mask = SecretMask.of(["user-one", "one-pass", "user-one:one-pass", "word"])
    assert mask("[user-one-pass] [user-one:one-pass] [password]") == (
        f"[{MASK}] [{MASK}] [pass{MASK}]"
    )


def test_a_text_cut_short_loses_the_end_where_a_secret_may_begin() -> None:
    mask = SecretMask.of([SECRET])
    text = "error: " + "x" * 100 + " Bearer SECRETVA"
    cut = mask(text, cut=True)
    assert text.startswith(cut) and len(cut) == len(text) - (mask.longest - 1)
    assert "SECRE" not in cut
    # A secret that is whole before the cut is masked, not dropped.
    assert mask(f"{SECRET} " + "y" * 100, cut=True).startswith(f"{MASK} yyy")
    # Nothing is dropped from a text that is whole.
    assert mask(text) == text


def test_an_excerpt_is_masked_before_it_is_cut() -> None:
    mask = SecretMask.of([SECRET])
    body = ("x" * 290 + " Bearer " + SECRET + " more").encode()
    excerpt = mask.excerpt(body, 300)
    assert len(excerpt) <= 300
    assert excerpt.endswith("Bearer " + MASK[: 300 - 298])
    assert "SE" not in excerpt
    # The same body with the secret beyond a window: its start is not kept either.
    long = (" " * 5000 + "Bearer " + SECRET).encode()
    assert "SECR" not in mask.excerpt(long[:5012], 300, truncated=True)
    assert mask.excerpt(b"  a \n  b  ", 300) == "a b"


@given(st.text(min_size=4, max_size=24), st.text(max_size=40), st.text(max_size=40))
def test_any_value_between_any_texts_is_masked(secret: str, before: str, after: str) -> None:
    masked = SecretMask.of([secret])(before + secret + after)
    assert secret not in masked
    assert MASK in masked


@given(st.text(min_size=4, max_size=24), st.text(max_size=300))
def test_a_cut_text_never_ends_with_the_start_of_the_secret(secret: str, before: str) -> None:
    mask = SecretMask.of([secret])
    for k in range(1, len(secret)):
        masked = mask(before + secret[:k], cut=True)
        if MASK not in masked:  # nothing of the secret's start is kept, only of what came before
            assert before.startswith(masked) and len(masked) <= len(before)


def test_installation_secrets_covers_properties_credentials_and_tokens() -> None:
    definition = load_definition(
        json.dumps(
            {
                "id": "acme",
                "name": "acme",
                "class": "sms",
                "properties": [
                    "Account",
                    "Password",
                    {"name": "Region", "secret": False, "required": False},
                ],
                "auth": {"type": "Basic", "username": "$Account$", "password": "$Password$"},
                "API": {
                    "SendMessage": {
                        "request_method": "POST",
                        "request_url": "https://api.example/$Region$/messages",
                        "request_content_type": "application/json",
                        "request_parameters": {"to": "$to$"},
                    }
                },
                "Webhook": [],
            }
        )
    )
    properties = {"Account": "AC-acct-1", "Password": "pass-word-2", "Region": "europe-west"}
    mask = installation_secrets(definition, properties, tokens=("token-value-3", None))
    text = "AC-acct-1 pass-word-2 token-value-3 " + b64("AC-acct-1:pass-word-2") + " europe-west"
    assert mask(text) == f"{MASK} {MASK} {MASK} {MASK} europe-west"
