"""Request bodies by content type: JSON, form, multipart, XML, and the query string.

See docs/format.md, "Requests" (and "XML bodies": an XML body is rendered from its own template
string by :mod:`._xml_template`, not from a tree).

The input is a rendered template tree (plain JSON). JSON bodies are UTF-8 with every character
written as itself. Form, multipart and query are flat fields: nested keys become ``a[b]``, lists
become repeated keys, ``true``/``false`` are written as such and ``null`` leaves the key out.
Values are encoded by the format's own rules, so no value can change the body's structure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Literal, TypeAlias
from urllib.parse import quote, urlencode

from ._errors import RenderError
from ._template import MISSING, Rendered
from ._xml import is_xml

__all__ = [
    "BodyKind",
    "Fields",
    "body_kind",
    "encode_form",
    "encode_json",
    "encode_multipart",
    "encode_query",
    "form_fields",
    "multipart_content_type",
    "parameters_in_query",
]

BodyKind: TypeAlias = Literal["json", "form", "multipart", "xml"]
Fields: TypeAlias = Sequence[tuple[str, str]]

# A JSON body's encoder, made once (``json.dumps`` with options makes one per call).
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=?]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_NAME_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


#: The methods whose request_parameters go in the query unless the request says otherwise.
QUERY_METHODS = frozenset({"GET", "DELETE"})


def parameters_in_query(method: object, parameters_in: object) -> bool:
    """(ext) Whether request_parameters are sent as the query string: as ``request_parameters_in``
    says (``"query"`` or ``"body"``), else for GET and DELETE (docs/format.md, "Requests")."""
    if parameters_in in ("query", "body"):
        return parameters_in == "query"
    return isinstance(method, str) and method.upper() in QUERY_METHODS


def body_kind(content_type: str) -> BodyKind | None:
    """How a body of this content type is encoded; None when the engine cannot write one."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type.endswith(("/json", "+json")):
        return "json"
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    if media_type == "multipart/form-data":
        return "multipart"
    if is_xml(media_type):
        return "xml"
    return None


def encode_json(tree: Rendered, where: str) -> bytes:
    try:
        text = _COMPACT.encode(tree)
        return text.encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # UnicodeError is a ValueError
        raise RenderError("the request body cannot be written as JSON", pointer=where) from None


def _scalar_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a float, in JSON's notation


def _flatten(key: str, value: object, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for name, item in value.items():
            _flatten(f"{key}[{name}]", item, out)
    elif isinstance(value, list):
        for item in value:
            _flatten(key, item, out)
    else:
        out.append((key, _scalar_text(value)))


def form_fields(tree: Rendered, where: str) -> list[tuple[str, str]]:
    """The flat (name, value) fields of a rendered tree, in template order."""
    if tree is MISSING:
        return []
    if not isinstance(tree, dict):
        raise RenderError(
            "request_parameters must be an object to be sent as form fields or a query string",
            pointer=where,
        )
    out: list[tuple[str, str]] = []
    for name, value in tree.items():
        _flatten(name, value, out)
    return out


def encode_form(fields: Fields, where: str) -> bytes:
    """``application/x-www-form-urlencoded``, UTF-8."""
    try:
        return urlencode(fields).encode("ascii")
    except UnicodeError:
        raise RenderError("a form field is not valid Unicode text", pointer=where) from None


def encode_query(fields: Fields, where: str) -> str:
    """A query string (spaces as ``%20``, which every server reads as a space)."""
    try:
        return urlencode(fields, quote_via=quote)
    except UnicodeError:
        raise RenderError("a query value is not valid Unicode text", pointer=where) from None


def _derive_boundary(fields: Sequence[tuple[bytes, bytes]]) -> str:
    """A boundary that depends only on the fields and occurs in none of them."""
    digest = hashlib.sha256()
    for name, value in fields:
        digest.update(len(name).to_bytes(8, "big") + name + len(value).to_bytes(8, "big") + value)
    for attempt in range(1000):
        candidate = f"msgbridge-{digest.hexdigest()[:40]}"
        encoded = candidate.encode("ascii")
        if not any(encoded in name or encoded in value for name, value in fields):
            return candidate
        digest.update(attempt.to_bytes(4, "big"))
    raise RenderError("no multipart boundary is absent from the content")  # pragma: no cover


def encode_multipart(fields: Fields, boundary: str | None, where: str) -> tuple[bytes, str]:
    """``multipart/form-data`` with one part per field; returns the body and its boundary."""
    try:
        encoded = [
            (name.translate(_NAME_ESCAPES).encode("utf-8"), value.encode("utf-8"))
            for name, value in fields
        ]
    except UnicodeError:
        raise RenderError("a form field is not valid Unicode text", pointer=where) from None
    if boundary is None:
        boundary = _derive_boundary(encoded)
    elif _BOUNDARY.fullmatch(boundary) is None:
        raise RenderError("the multipart boundary is not 1 to 70 allowed characters")
    else:
        mark = boundary.encode("ascii")
        if any(mark in name or mark in value for name, value in encoded):
            raise RenderError("the multipart boundary occurs in the content", pointer=where)
    delimiter = b"--" + boundary.encode("ascii")
    out: list[bytes] = []
    for name, value in encoded:
        out += (delimiter, b'\r\nContent-Disposition: form-data; name="', name, b'"\r\n\r\n')
        out += (value, b"\r\n")
    out += (delimiter, b"--\r\n")
    return b"".join(out), boundary


def multipart_content_type(declared: str, boundary: str) -> str:
    """The declared multipart type (its other parameters kept) with this boundary."""
    params = [
        p for p in declared.split(";")[1:] if p.strip().lower().partition("=")[0] != "boundary"
    ]
    return ";".join([declared.split(";")[0].strip(), *params]) + f"; boundary={boundary}"
