"""(ext) A sender's name from the answer to a definition's ``LookupContact`` (docs/format.md,
"Contact names"): the response_map's captures, and the first ``contact_name`` template whose
every capture has a value. Pure: the call itself, its cache and its bounds are the core's
(``server/core/ingest/_contact_names.py``)."""

from __future__ import annotations

from ._event_values import MAX_FIELD_VALUE, build_values
from ._model import ContactLookup
from ._response import map_response

__all__ = ["CONTACT_NAME_FIELD", "contact_name_from_answer"]

#: The extra field an inbound message's sender's name is kept in, captured from its payload by a
#: model's ``keep`` or looked up (docs/format.md, "Contact names").
CONTACT_NAME_FIELD = "contact_name"


def contact_name_from_answer(
    lookup: ContactLookup, body: bytes, content_type: str | None
) -> str | None:
    """The name a 2xx answer gives, trimmed and cut to an extra field's length; None when its
    response_map refuses it (a literal that does not hold) or no template has all its values."""
    outcome = map_response(lookup.request.response_map, body, content_type)
    if not outcome.accepted:
        return None
    captures = dict(outcome.captures)
    for template in lookup.names:
        built = build_values({CONTACT_NAME_FIELD: template}, captures).get(CONTACT_NAME_FIELD)
        name = built.strip() if isinstance(built, str) else None
        if name:
            return name[:MAX_FIELD_VALUE]
    return None
