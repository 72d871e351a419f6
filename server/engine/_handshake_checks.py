"""(ext) What the schema cannot say about ``Handshake`` and ``addresses`` (docs/format.md,
"Verification handshakes" and "Addresses").

Like :mod:`._checks`, each function takes the plain JSON document, which may be broken elsewhere,
checks only what is intact and yields problems with their pointers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._answer_checks import answer_problems
from ._errors import Problem
from ._placeholders import placeholders_in
from ._pointer import child
from ._variables import WEBHOOK, property_names, tree_strings

__all__ = ["HANDSHAKE_CHECKS", "check_addresses", "check_handshakes", "handshake_templates"]


def _handshakes(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    items = document.get("Handshake")
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                yield child("/Handshake", i), item


def _captures(at: str, item: Mapping[str, Any]) -> dict[str, str]:
    """Capture name → the pointer of its first pattern string."""
    found: dict[str, str] = {}
    for key in ("request_parameters", "request_headers"):
        for string in tree_strings(item.get(key), child(at, key), WEBHOOK):
            for placeholder in placeholders_in(string.text):
                found.setdefault(placeholder.name, string.pointer)
    return found


def handshake_templates(document: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(pointer, text) of every template a handshake renders: its ``require`` values and its
    answer's body."""
    for at, item in _handshakes(document):
        require = item.get("require")
        if isinstance(require, Mapping):
            for name, wanted in require.items():
                where = child(child(at, "require"), name)
                if isinstance(wanted, str):
                    yield where, wanted
                elif isinstance(wanted, Mapping):
                    for algorithm in ("sha1", "sha256"):
                        values = wanted.get(algorithm)
                        if isinstance(values, list):
                            for j, text in enumerate(values):
                                if isinstance(text, str):
                                    yield child(child(where, algorithm), j), text
        answer = item.get("answer")
        if isinstance(answer, Mapping) and isinstance(answer.get("body"), str):
            yield child(child(at, "answer"), "body"), answer["body"]


def check_handshakes(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Each handshake's ``require`` names its captures; its templates name a property or a
    capture; no capture takes a property's name (a request would then supply the value it is
    checked against); its answer is a 2xx with a small textual body; an unsigned one without
    ``require`` is warned about (it answers anyone)."""
    properties = {name for _, name in property_names(document)}
    known_properties = isinstance(document.get("properties", []), list)
    for at, item in _handshakes(document):
        captures = _captures(at, item)
        for name, where in captures.items():
            if name in properties:
                yield Problem(
                    pointer=where,
                    message=f"${name}$ is a property's name: a handshake's capture must not be, "
                    "or the request would supply the value it is checked against",
                )
        require = item.get("require")
        if isinstance(require, Mapping):
            for name in require:
                if name not in captures:
                    yield Problem(
                        pointer=child(child(at, "require"), name),
                        message=f'the handshake never captures ${name}$: write "${name}$" in '
                        "its request_parameters or request_headers",
                    )
        if isinstance(item.get("answer"), Mapping):
            yield from answer_problems(child(at, "answer"), item["answer"], templated=True)
        if item.get("signed") is False and not require:
            yield Problem(
                pointer=child(at, "signed"),
                message="an unsigned handshake without require answers anyone who sends it: "
                "require a capture to equal a property (a verify token), or leave it signed",
                severity="warning",
            )
    if not known_properties:
        return
    for where, text in handshake_templates(document):
        handshake_at = "/".join(where.split("/")[:3])
        item = document["Handshake"][int(handshake_at.rsplit("/", 1)[1])]
        captures = _captures(handshake_at, item)
        for placeholder in placeholders_in(text):
            if placeholder.name not in properties and placeholder.name not in captures:
                yield Problem(
                    pointer=where,
                    message=f"unknown placeholder ${placeholder.name}$: a handshake's templates "
                    "name the installation's properties and the handshake's own captures",
                )


def check_addresses(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Ids and user names are sent as given: ``number_format`` rewrites phone numbers only."""
    kind = document.get("addresses", "phone")
    number_format = document.get("number_format", "as_given")
    if kind in ("id", "username") and number_format != "as_given":
        yield Problem(
            pointer="/number_format",
            message=f'number_format "{number_format}" writes phone numbers, and this '
            f'definition\'s addresses are "{kind}": they are kept verbatim, so leave it out '
            '(or "as_given")',
        )


HANDSHAKE_CHECKS = (check_handshakes, check_addresses)
