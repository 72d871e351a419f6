"""The signed request as the provider sent it, and case-insensitive header lookup."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ._failed import WebhookAuthFailed

__all__ = [
    "FORM",
    "SignedRequest",
    "base_url",
    "form_fields",
    "header_values",
    "media_type",
    "query_fields",
    "single_header",
]

FORM = "application/x-www-form-urlencoded"
_MAX_FIELDS = 10_000


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedRequest:
    """What a provider sent, exactly as received.

    ``url`` is the full public URL the provider called (scheme, host, optional port, path and
    query), which is what URL-signing schemes sign; ``body`` is the raw bytes, never re-encoded.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def header_values(request: SignedRequest, name: str) -> tuple[str, ...]:
    """Every value of header ``name`` (compared case-insensitively), in order."""
    wanted = name.lower()
    return tuple(value for key, value in request.headers if key.lower() == wanted)


def single_header(request: SignedRequest, name: str) -> str:
    """The one non-empty value of header ``name``; missing, empty or repeated is a failure."""
    values = header_values(request, name)
    if not values:
        raise WebhookAuthFailed(f"the {name} header is missing")
    if len(values) > 1:
        raise WebhookAuthFailed(f"the {name} header appears more than once")
    value = values[0].strip()
    if not value:
        raise WebhookAuthFailed(f"the {name} header is empty")
    return value


def media_type(request: SignedRequest) -> str:
    """The request's media type, lower case, without parameters (``""`` when absent)."""
    values = header_values(request, "Content-Type")
    if not values:
        return ""
    return values[0].partition(";")[0].strip().lower()


def base_url(url: str) -> str:
    """``url`` up to its query or fragment, as given (no re-encoding, no added slash)."""
    end = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:end]


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """The decoded name/value pairs of a form-encoded body, in order (at most 10,000)."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:  # not UTF-8, or too many fields
        raise WebhookAuthFailed("the body is not a valid form") from None


def query_fields(url: str) -> list[tuple[str, str]]:
    """The decoded name/value pairs of ``url``'s query, in order (at most 10,000)."""
    try:
        query = urlsplit(url).query
        return parse_qsl(query, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise WebhookAuthFailed("the request URL is not valid") from None
