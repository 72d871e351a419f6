"""(ext) What the schema cannot say about a webhook model's ``repeated`` (docs/format.md, "Webhook
bodies"): each field it names is one the model's pattern reads at its top level.

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._pointer import child, tokens
from ._variables import webhook_models

__all__ = ["check_repeated"]


def check_repeated(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A ``repeated`` field is a top-level key of the model's ``request_parameters`` object, or
    (ext) a JSON Pointer through its objects to a key of one."""
    for i, model in webhook_models(document):
        if not isinstance(model.get("repeated"), Mapping):
            continue
        at = f"/Webhook/{i}/repeated"
        pattern = model.get("request_parameters")
        if not isinstance(pattern, Mapping):
            yield Problem(
                pointer=at,
                message="repeated names fields of an object payload, but this model's "
                "request_parameters is not an object",
            )
            continue
        for name in model["repeated"]:
            if name.startswith("/"):  # (ext) a field inside nested objects
                if not _pattern_has(pattern, tokens(name)):
                    yield Problem(
                        pointer=child(at, name),
                        message=f'"{name}" does not lead through this model\'s '
                        "request_parameters objects to a key of them, so nothing reads it: "
                        "name a field the model matches or captures",
                    )
            elif name.endswith("*"):
                yield Problem(
                    pointer=child(at, name),
                    message=f'"{name}" is a family of keys; repeated names one field as sent',
                )
            elif name not in pattern and f"{name}?" not in pattern:  # (ext) an optional key
                yield Problem(
                    pointer=child(at, name),
                    message=f'"{name}" is not a key of this model\'s request_parameters, so '
                    "nothing reads it: name a field the model matches or captures",
                )


def _pattern_has(pattern: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``path`` names a key of the pattern, through its objects (a pointer has at
    least one token: ``"/"`` is the key ``""``)."""
    node: object = pattern
    for token in path:
        if not isinstance(node, Mapping) or token not in node:
            return False
        node = node[token]
    return bool(path)
