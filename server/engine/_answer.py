"""(ext) Which answer a stored webhook gets (docs/format.md, "Answers").

Pure and linear in the request's events: the first event, in the request's order, whose model has
an ``answer`` gives it; else the definition's ``WebhookAnswer`` — ``matched`` when any payload
gave an event, ``unmatched`` when none did; else the default (200, empty ``text/plain``). Only a
request that was stored gets one: the statuses the core decides itself (400, 401, 404, 503, 500)
never pass through here.
"""

from __future__ import annotations

from ._match import MatchResult
from ._model import Definition, WebhookAnswer

__all__ = ["ANSWER_BODY_MAX_BYTES", "DEFAULT_ANSWER", "choose_answer"]

#: The largest answer body, in bytes of UTF-8 (docs/format.md, "Answers").
ANSWER_BODY_MAX_BYTES = 4096

#: What a stored webhook gets when its definition says nothing.
DEFAULT_ANSWER = WebhookAnswer()


def choose_answer(definition: Definition, result: MatchResult) -> WebhookAnswer:
    """The answer for a stored request whose payloads matched as ``result`` says."""
    models = definition.webhooks
    for event in result.events:
        if 0 <= event.model < len(models):
            answer = models[event.model].answer
            if answer is not None:
                return answer
    if result.events:
        return definition.answer_matched or DEFAULT_ANSWER
    return definition.answer_unmatched or DEFAULT_ANSWER
