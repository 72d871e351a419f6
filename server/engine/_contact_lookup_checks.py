"""(ext) The ``msgbridge check`` rules of ``API.LookupContact`` (docs/format.md, "Contact
names") that the schema cannot express.

The schema requires the request, its ``response_map`` and ``contact_name``, and refuses the keys a
lookup does not have (``response_rules``, ``split``, ``for_each``, ``then``, ``find``,
``only_if``, ``provider_deduplicates``); the placeholder check (:mod:`._checks`) reports a
placeholder of the request that is neither a property nor ``$from$``, ``$to$`` or
``$webhook_url$``, and a capture of its response_map named like a property or a gateway variable.
Here, each ``contact_name`` template:

- names only captures of the lookup's response_map, plainly (no filter, no ``?``: a capture
  without a value makes the template give no name, and the next one is tried);
- names at least one (a literal name would be every sender's);
- has no stray ``$``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import Problem
from ._placeholders import has_stray_dollar, placeholders_in
from ._pointer import child
from ._variables import LOOKUP_RESPONSE_MAP, tree_strings

__all__ = ["CONTACT_LOOKUP_CHECKS"]

_AT = "/API/LookupContact"


def _templates(lookup: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    names = lookup.get("contact_name")
    if isinstance(names, str):
        yield f"{_AT}/contact_name", names
    elif isinstance(names, list):
        for i, template in enumerate(names):
            if isinstance(template, str):
                yield child(f"{_AT}/contact_name", i), template


def check_contact_name(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Each contact_name template builds the name from the response_map's captures."""
    api = document.get("API")
    lookup = api.get("LookupContact") if isinstance(api, Mapping) else None
    if not isinstance(lookup, Mapping):
        return
    captured = {
        p.name
        for t in tree_strings(
            lookup.get("response_map"), f"{_AT}/response_map", LOOKUP_RESPONSE_MAP
        )
        for p in placeholders_in(t.text)
    }
    for at, template in _templates(lookup):
        if has_stray_dollar(template):
            yield Problem(pointer=at, message="a $ that opens no placeholder; write $$ for a $")
        named = placeholders_in(template)
        if not named:
            yield Problem(
                pointer=at,
                message="this template names no capture, so every sender would get the same "
                'name: build it from the response_map\'s captures ("$first_name$ $last_name$")',
            )
        for p in named:
            if p.filters or p.optional:
                yield Problem(
                    pointer=at,
                    message=f"{p.shown}: a contact_name names captures plainly, as ${p.name}$ "
                    "(no filters, no ?: a capture without a value makes this template give no "
                    "name, and the next one is tried)",
                )
            if p.name not in captured:
                yield Problem(
                    pointer=at,
                    message=f"the LookupContact response_map never captures ${p.name}$: "
                    "contact_name reads the captures of the lookup's answer",
                )


CONTACT_LOOKUP_CHECKS = (check_contact_name,)
