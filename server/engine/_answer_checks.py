"""(ext) What the schema cannot say about a webhook answer (docs/format.md, "Answers").

An answer's status is a 2xx (the webhook was stored: a 4xx or 5xx would tell the provider it was
not, and a 3xx would send it elsewhere), its body at most :data:`ANSWER_BODY_MAX_BYTES` bytes of
UTF-8 (none at all with 204 or 205, which have no body), and its content type one line naming a
textual media type: the body is a literal string, and nothing else goes into the answer's headers.
A body holding what looks like a placeholder is warned about: it is sent as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._answer import ANSWER_BODY_MAX_BYTES
from ._errors import Problem
from ._variables import webhook_models

__all__ = ["answer_problems", "check_webhook_answers", "is_textual"]

# type "/" subtype, then any parameters; tokens per RFC 9110 §5.6.2; no control character at all
_MEDIA_TYPE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)/([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(;.*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXTUAL_APPLICATION = ("json", "xml")
# what looks like a placeholder: "$name$", a name without "$" or white space (docs/format.md,
# "Placeholders"); bounded, so the search stays linear in the body
_LOOKS_LIKE_PLACEHOLDER = re.compile(r"\$[^$\s]{1,64}\$")


def is_textual(content_type: str) -> bool:
    """Whether ``content_type`` is one line naming text/*, application/json or …/xml, …+json or
    …+xml (with any parameters)."""
    if _CONTROL.search(content_type):
        return False
    found = _MEDIA_TYPE.fullmatch(content_type.strip())
    if found is None:
        return False
    kind, subtype = found.group(1).lower(), found.group(2).lower()
    if kind == "text":
        return True
    return subtype in _TEXTUAL_APPLICATION or subtype.endswith(("+json", "+xml"))


def check_webhook_answers(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Every ``answer`` of a model and of ``WebhookAnswer`` is a 2xx with a small textual body."""
    for i, model in webhook_models(document):
        if isinstance(model.get("answer"), Mapping):
            yield from answer_problems(f"/Webhook/{i}/answer", model["answer"])
    defaults = document.get("WebhookAnswer")
    if isinstance(defaults, Mapping):
        for key in ("matched", "unmatched"):
            if isinstance(defaults.get(key), Mapping):
                yield from answer_problems(f"/WebhookAnswer/{key}", defaults[key])


def answer_problems(
    at: str, answer: Mapping[str, Any], *, templated: bool = False
) -> Iterator[Problem]:
    """The problems of one answer object at ``at``; a ``templated`` body (a handshake's: docs/
    format.md, "Verification handshakes") takes placeholders, so they are not warned about."""
    status = answer.get("status", 200)
    if isinstance(status, int) and not isinstance(status, bool) and not 200 <= status <= 299:
        yield Problem(
            pointer=f"{at}/status",
            message=f"an answer's status must be 2xx (200 to 299), not {status}: the webhook "
            "is stored when it is answered, and a 4xx or 5xx would tell the provider it "
            "failed (it would retry, or give up on the URL); the gateway answers its own "
            "failures itself",
        )
    body = answer.get("body", "")
    if isinstance(body, str):
        size = len(body.encode("utf-8", "replace"))
        if size > ANSWER_BODY_MAX_BYTES:
            yield Problem(
                pointer=f"{at}/body",
                message=f"an answer's body is at most {ANSWER_BODY_MAX_BYTES} bytes of UTF-8, "
                f"not {size}",
            )
        elif body and status in (204, 205):
            yield Problem(
                pointer=f"{at}/body",
                message=f"a {status} answer has no body: leave body out or use 200",
            )
        found = None if templated else _LOOKS_LIKE_PLACEHOLDER.search(body)
        if found is not None:
            yield Problem(
                pointer=f"{at}/body",
                message=f"an answer's body takes no placeholders: {found.group(0)} is sent as "
                "written",
                severity="warning",
            )
    content_type = answer.get("content_type")
    if isinstance(content_type, str) and not is_textual(content_type):
        yield Problem(
            pointer=f"{at}/content_type",
            message="an answer's content_type must be one line naming a textual media type "
            f"(text/*, application/json, application/xml, …+json, …+xml), not {content_type!r}",
        )
