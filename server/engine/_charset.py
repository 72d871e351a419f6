"""Decoding text in a charset a webhook named, leniently where the format has no strict rule."""

from __future__ import annotations

__all__ = ["decode_text"]


def decode_text(data: bytes, charset: str | None, errors: str) -> str:
    """``data`` in ``charset`` when that names a usable text encoding, else in UTF-8.

    With ``errors="strict"``, bytes that are invalid in a real charset raise UnicodeDecodeError.
    A charset that is unknown, not a text encoding, or a codec that refuses the error handler
    (``idna``, ``undefined``, a name with a NUL…) is ignored.
    """
    if charset:
        try:
            return data.decode(charset, errors)
        except UnicodeDecodeError:
            if errors == "strict":
                raise
        except (LookupError, ValueError, TypeError):
            pass
    return data.decode("utf-8", errors)
