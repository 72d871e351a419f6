"""JSON Pointers (RFC 6901): where a problem is, e.g. ``/API/SendMessage/request_url``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["child", "escape", "pointer", "tokens"]


def escape(token: str | int) -> str:
    """One reference token, with ``~`` written ``~0`` and ``/`` written ``~1``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def child(parent: str, token: str | int) -> str:
    """The pointer to ``token`` inside the value at ``parent``."""
    return f"{parent}/{escape(token)}"


def pointer(path: Iterable[str | int]) -> str:
    """The pointer of a path of keys and indices; the empty path is ``""`` (the whole document)."""
    return "".join(f"/{escape(token)}" for token in path)


def tokens(text: str) -> tuple[str, ...]:
    """The unescaped reference tokens of a pointer (``""`` has none)."""
    if not text:
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/"))
