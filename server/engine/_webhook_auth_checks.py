"""(ext) What the schema cannot say about a WebhookAuth (docs/format.md, "WebhookAuth").

An ``hmac``'s or ``rsa``'s ``string_to_sign`` may name only parts of the request the verifier knows
(server/security/webhook_auth/_string_to_sign.py has the same table), each header it reads must be
named by its option and cannot be the signature's own, and it replaces ``signed`` rather than
adding to it. A ``token`` is in a header or a body field, exactly one. A signed string without
the body is allowed — Plivo V2 signs none — but said, since a changed body would then pass.
An ``rsa`` public key written in the definition itself must be a usable RSA key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import Placeholder, has_stray_dollar, parse_template
from ._rsa_keys import RsaKeyError, rsa_public_key

__all__ = ["STRING_TO_SIGN_PARTS", "check_webhook_auth"]

#: The parts a ``string_to_sign`` placeholder may name, besides ``header:<Name>``.
STRING_TO_SIGN_PARTS = (
    "body",
    "url",
    "base_url",
    "method",
    "path",
    "timestamp",
    "nonce",
    "url_sorted_params",
)
#: Parts that cover the body: a form body's parameters are signed in $url_sorted_params$.
_COVER_BODY = frozenset({"body", "url_sorted_params"})
_HEADER = "header:"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NEEDS = {"timestamp": "timestamp_header", "nonce": "nonce_header"}
_AT = "/WebhookAuth/string_to_sign"


def check_webhook_auth(document: Mapping[str, Any]) -> Iterator[Problem]:
    """The ``string_to_sign`` of an ``hmac`` names known parts of the request; a ``token`` says
    where it is."""
    auth = document.get("WebhookAuth")
    if isinstance(auth, Mapping) and auth.get("type") in ("hmac", "rsa"):
        yield from _string_to_sign_problems(auth)
    if isinstance(auth, Mapping) and auth.get("type") == "rsa":
        yield from _rsa_key_problems(auth)
    elif isinstance(auth, Mapping) and auth.get("type") == "token":
        yield from _token_problems(auth)


def _rsa_key_problems(auth: Mapping[str, Any]) -> Iterator[Problem]:
    """A public key written in the definition (no placeholder) must be a usable RSA key; one in
    a property is read when an installation is saved."""
    template = auth.get("public_key")
    if not isinstance(template, str) or not template:
        return  # the schema says what is wrong with it
    if any(isinstance(s, Placeholder) for s in parse_template(template)):
        return
    try:
        rsa_public_key(template)
    except RsaKeyError as error:
        yield Problem(pointer="/WebhookAuth/public_key", message=f"{error}")


def _token_problems(auth: Mapping[str, Any]) -> Iterator[Problem]:
    """A token is in a header or in a body field, exactly one; a prefix belongs to a header."""
    if "header" in auth and "field" in auth:
        yield Problem(
            pointer="/WebhookAuth/field",
            message="a token is in a header or in a body field, not both; keep one",
        )
    elif "header" not in auth and "field" not in auth:
        yield Problem(
            pointer="/WebhookAuth",
            message="a token needs header or field: where the provider puts it",
        )
    if "prefix" in auth and "header" not in auth:
        yield Problem(
            pointer="/WebhookAuth/prefix",
            message="prefix is text before the token in its header, so it needs header",
        )


def _string_to_sign_problems(auth: Mapping[str, Any]) -> Iterator[Problem]:
    template = auth.get("string_to_sign")
    if not isinstance(template, str) or not template:
        return  # the schema says what is wrong with it
    if "signed" in auth:
        yield Problem(
            pointer="/WebhookAuth/signed",
            message="signed and string_to_sign both say what is signed; keep one",
        )
    if has_stray_dollar(template):
        yield Problem(
            pointer=_AT,
            message="a $ in string_to_sign opens no placeholder; write $$ for a dollar sign",
        )
    names: list[str] = []
    for segment in parse_template(template):
        if isinstance(segment, Placeholder):
            names.append(segment.name)
            yield from _part_problems(segment, auth)
    if not _COVER_BODY.intersection(names):
        yield Problem(
            pointer=_AT,
            message="string_to_sign includes neither $body$ nor $url_sorted_params$: a changed "
            "body would still pass",
            severity="warning",
        )


def _part_problems(segment: Placeholder, auth: Mapping[str, Any]) -> Iterator[Problem]:
    name = segment.name
    shown = f"${name}{'?' if segment.optional else ''}$"
    if segment.optional:
        yield Problem(pointer=_AT, message=f"{shown}: no part of a signed string is optional")
    elif name.startswith(_HEADER):
        header = name[len(_HEADER) :]
        signature = auth.get("header")
        if isinstance(signature, str) and header.lower() == signature.lower():
            yield Problem(
                pointer=_AT,
                message=f"{shown} is the header that carries the signature, which cannot sign "
                "itself",
            )
        elif not _HEADER_NAME.fullmatch(header):
            yield Problem(
                pointer=_AT,
                message=f"{shown} does not name a header: write $header:Name$, where an HTTP "
                "header name is made of letters, digits and !#$%&'*+.^_`|~- only",
            )
    elif name not in STRING_TO_SIGN_PARTS:
        known = ", ".join(f"${part}$" for part in STRING_TO_SIGN_PARTS)
        close = difflib.get_close_matches(name.lower(), STRING_TO_SIGN_PARTS, n=1, cutoff=0.6)
        hint = f' (did you mean "${close[0]}$"?)' if close else ""
        yield Problem(
            pointer=_AT,
            message=f"unknown part {shown} in string_to_sign{hint}: the parts are {known} and "
            "$header:Name$",
        )
    elif name in _NEEDS and _NEEDS[name] not in auth:
        yield Problem(
            pointer=_AT,
            message=f"{shown} needs {_NEEDS[name]}, the header that carries it",
        )
