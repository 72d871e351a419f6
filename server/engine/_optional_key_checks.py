"""(ext) What the schema cannot say about a webhook pattern's optional keys (docs/format.md,
"Webhook models"): ``"context?"`` names the key ``context`` once, with one ``?``.

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._patterns import optional_key
from ._pointer import child
from ._variables import webhook_models

__all__ = ["check_optional_keys"]


def _pattern_trees(document: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    """Every pattern laid over a body: models' parameters and ``enclosing``, handshakes'."""
    for i, model in webhook_models(document):
        yield f"/Webhook/{i}/request_parameters", model.get("request_parameters")
        enclosing = model.get("enclosing")
        if isinstance(enclosing, Mapping):
            for key, tree in enclosing.items():
                yield child(f"/Webhook/{i}/enclosing", str(key)), tree
    handshakes = document.get("Handshake")
    for i, item in enumerate(handshakes if isinstance(handshakes, list) else ()):
        if isinstance(item, Mapping):
            yield f"/Handshake/{i}/request_parameters", item.get("request_parameters")


def check_optional_keys(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A key is written once, optional or not, and ``?`` makes it optional once."""
    for at, tree in _pattern_trees(document):
        stack: list[tuple[str, object]] = [(at, tree)]
        while stack:
            here, value = stack.pop()
            if isinstance(value, list):
                stack.extend((child(here, j), item) for j, item in enumerate(value))
            if not isinstance(value, Mapping):
                continue
            written: dict[str, str] = {}
            for key, item in value.items():
                key = str(key)
                stack.append((child(here, key), item))
                name, optional = optional_key(key)
                if optional and optional_key(name)[1]:
                    yield Problem(
                        pointer=child(here, key),
                        message=f'"{key}": one "?" makes a key optional; a pattern cannot name '
                        "a key that ends in ?",
                    )
                other = written.setdefault(name, key)
                if other != key:
                    yield Problem(
                        pointer=child(here, key),
                        message=f'"{key}" and "{other}" name the same key {name!r}: keep one '
                        '(with "?" when the payload may leave it out)',
                    )
