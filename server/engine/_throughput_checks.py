"""(ext) What the schema cannot say about sending at the provider's pace: ``Throughput`` and a send
request's ``provider_deduplicates`` (docs/format.md, "Throughput").

Like :mod:`._checks`, each function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

from ._errors import Problem
from ._placeholders import placeholders_in
from ._variables import SEND_MESSAGE, request_pointers, tree_strings

__all__ = ["THROUGHPUT_CHECKS", "check_provider_deduplicates", "check_throughput"]

_SENDS = ("/API/SendMessage", "/API/SendFile")
_KEY = "provider_deduplicates"
#: The parts of a request that go to the provider, where the key it is recognised by must be.
_SENT = ("request_url", "request_headers", "request_parameters", "request_query")


def check_throughput(document: Mapping[str, Any]) -> Iterator[Problem]:
    """A number's rate above the installation's, in the same unit, can never be reached: the
    installation's rate holds for all its numbers together, so the file likely mixes them up."""
    throughput = document.get("Throughput")
    if not isinstance(throughput, Mapping):
        return
    number, installation = throughput.get("per_number"), throughput.get("per_installation")
    if not (isinstance(number, Mapping) and isinstance(installation, Mapping)):
        return
    mine, whole = number.get("per_second"), installation.get("per_second")
    if not (_is_number(mine) and _is_number(whole)):
        return  # the schema says what is wrong
    unit = number.get("unit", "messages")
    if unit != installation.get("unit", "messages") or mine <= whole:
        return
    yield Problem(
        pointer="/Throughput/per_number/per_second",
        message=f"one number may send {mine:g} {unit} a second, more than the whole "
        f"installation's {whole:g} (per_installation): a number never sends faster than its "
        "installation, so this rate is never reached",
        severity="warning",
    )


def check_provider_deduplicates(document: Mapping[str, Any]) -> Iterator[Problem]:
    """``provider_deduplicates`` is about a send's retries, and the provider can only recognise a
    repeat by a key the request carries: our id of the message."""
    for at, request, _ in request_pointers(document):
        if _KEY not in request:
            continue
        where = f"{at}/{_KEY}"
        if not at.startswith(_SENDS):
            yield Problem(
                pointer=where,
                message=f"{_KEY} says a send may be retried after a timeout: only SendMessage "
                "and SendFile (and their then) have it",
            )
            continue
        if request[_KEY] is not True:
            continue
        used = {
            placeholder.name
            for key in _SENT
            for template in tree_strings(request.get(key), f"{at}/{key}", SEND_MESSAGE)
            for placeholder in placeholders_in(template.text)
        }
        if "gateway_id" not in used:
            yield Problem(
                pointer=where,
                message="a provider can only recognise a repeat of this request by a key it "
                "carries, but $gateway_id$ is nowhere in it (URL, headers, parameters): send it "
                "as the provider's idempotency key or client reference, or leave "
                f"{_KEY} out",
            )
        elif request.get("for_each", "part" if "split" in request else "once") != "once" and (
            "part" not in used
        ):
            yield Problem(
                pointer=where,
                message="this send makes one request per part, all with the same $gateway_id$: "
                "a provider that deduplicates by it may take the second for a repeat of the "
                "first; add $part$ to the key ($gateway_id$-$part$)",
                severity="warning",
            )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


THROUGHPUT_CHECKS = (check_throughput, check_provider_deduplicates)
