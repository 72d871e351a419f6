"""(ext) The ``msgbridge check`` rules of a Token ``auth`` (docs/format.md, "Tokens from a
request") that the schema cannot express.

The schema requires ``request`` (with its ``response_map``) and ``use``; the placeholder check
(:mod:`._checks`) reports a placeholder of the token request that is not a property, and a capture
of its response_map other than ``$token$``, ``$expires_in$`` and ``$error$``. Here:

- the response_map must capture ``$token$`` (else the answer can never yield a token); a map
  that is a string must be exactly ``"$token$"`` (the whole body);
- ``use`` must carry ``$token$`` in a header or a query parameter;
- a property named ``token`` would make ``$token$`` in ``use`` ambiguous.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import placeholders_in
from ._variables import TOKEN_RESPONSE_MAP, TOKEN_USE, property_names, token_request, tree_strings

__all__ = ["TOKEN_AUTH_CHECKS"]

_TOKEN = "token"  # noqa: S105 (a variable name, not a secret)


def _token_auth(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    auth = document.get("auth")
    if isinstance(auth, Mapping) and auth.get("type") == "Token":
        return auth
    return None


def check_token_captured(document: Mapping[str, Any]) -> Iterator[Problem]:
    """The token request's response_map captures $token$."""
    request = token_request(document)
    if request is None or "response_map" not in request:
        return  # the schema reports a missing map
    response_map = request["response_map"]
    at = "/auth/request/response_map"
    if isinstance(response_map, str):
        if response_map != f"${_TOKEN}$":
            yield Problem(
                pointer=at,
                message='a response_map that is a string must be exactly "$token$" (the whole '
                "body is the token); use an object to find the token in a JSON or XML answer",
            )
        return
    captured = {
        p.name
        for t in tree_strings(response_map, at, TOKEN_RESPONSE_MAP)
        for p in placeholders_in(t.text)
    }
    if _TOKEN not in captured:
        yield Problem(
            pointer=at,
            message="this response_map never captures $token$, so the token request can never "
            'yield a token: put "$token$" where the answer has it (e.g. {"access_token": '
            '"$token$"})',
        )


def check_token_used(document: Mapping[str, Any]) -> Iterator[Problem]:
    """``use`` carries $token$ somewhere: a header or a query parameter."""
    auth = _token_auth(document)
    use = auth.get("use") if auth is not None else None
    if not isinstance(use, Mapping) or not any(key in use for key in ("headers", "query")):
        return  # no Token auth, or the schema reports it
    used = {
        p.name
        for key in ("headers", "query")
        for t in tree_strings(use.get(key), f"/auth/use/{key}", TOKEN_USE)
        for p in placeholders_in(t.text)
    }
    if _TOKEN not in used:
        yield Problem(
            pointer="/auth/use",
            message="use never carries $token$: the calls would not send the token; put it in a "
            'header ({"headers": {"Authorization": "Bearer $token$"}}) or a query parameter '
            '({"query": {"access_token": "$token$"}})',
        )


def check_token_property(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A property named ``token`` would hide the token in ``use``."""
    if _token_auth(document) is None:
        return
    for at, name in property_names(document):
        if name == _TOKEN:
            yield Problem(
                pointer=at,
                message="with a Token auth, $token$ is the token obtained; a property named "
                '"token" would be ambiguous, rename it',
            )


TOKEN_AUTH_CHECKS = (check_token_captured, check_token_used, check_token_property)
