"""(ext) What the schema cannot say about a webhook model's ``repeated`` (docs/format.md, "Webhook
bodies"): each field it names is one the model's pattern reads at its top level.

Like :mod:`._checks`, the function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._pointer import child
from ._variables import webhook_models

__all__ = ["check_repeated"]


def check_repeated(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A ``repeated`` field is a top-level key of the model's ``request_parameters`` object."""
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
            if name.endswith("*"):
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
