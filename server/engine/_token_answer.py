"""(ext) What a token request's answer says (docs/format.md, "Tokens from a request"): pure.

:func:`read_token` lays the Token auth's ``response_map`` over the answer, as a send's
(:func:`map_response`), and judges it:

    answer                                              verdict
    2xx, every literal holds, $token$ captured          "token", with $expires_in$ (seconds) or
                                                        the auth's ttl_s as its lifetime
    2xx without a token, or a literal that fails        "refused" (200 with an error object, as
                                                        WeChat answers bad credentials)
    408, 425, 429 or 5xx                                "unavailable": try again later
    any other status                                    "refused"

A refusal's ``reason`` is the ``$error$`` capture when there is one, else the HTTP status or the
failed condition; it is provider text, which the caller masks before showing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ._model import TokenAuth
from ._response import map_response

__all__ = ["TokenAnswer", "read_token"]

_UNAVAILABLE = frozenset({408, 425, 429})


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenAnswer:
    """A token request's outcome: ``verdict`` "token" with ``token`` and ``lifetime_s`` (None:
    no expiry known), or "refused" / "unavailable" with ``reason``. ``repr`` hides the token."""

    verdict: Literal["token", "refused", "unavailable"]
    token: str | None = field(default=None, repr=False)
    lifetime_s: float | None = None
    reason: str = ""


def read_token(auth: TokenAuth, status: int, body: bytes, content_type: str | None) -> TokenAnswer:
    """The outcome of the token request ``auth.request`` answered ``status`` with ``body``."""
    if status >= 500 or status in _UNAVAILABLE:
        return TokenAnswer(verdict="unavailable", reason=f"it answered HTTP {status}")
    if not 200 <= status < 300:
        return TokenAnswer(verdict="refused", reason=f"HTTP {status}")
    outcome = map_response(auth.request.response_map, body, content_type)
    token = outcome.captures.get("token")
    if isinstance(token, tuple):
        token = token[0] if token else None
    if not outcome.accepted or not token:
        why = outcome.error or outcome.reason or "the answer has no token"
        return TokenAnswer(verdict="refused", reason=why)
    return TokenAnswer(
        verdict="token",
        token=token,
        lifetime_s=_seconds(outcome.captures.get("expires_in"), auth.ttl_s),
    )


def _seconds(captured: object, ttl_s: int | None) -> float | None:
    """The answer's lifetime when it is a number of seconds (at least 0), else ``ttl_s``."""
    if isinstance(captured, tuple):
        captured = captured[0] if captured else None
    if isinstance(captured, str):
        try:
            seconds = float(captured)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None if ttl_s is None else float(ttl_s)
