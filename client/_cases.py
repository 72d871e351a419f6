"""A definition's case set, and what ``msgbridge test`` compares (docs/format.md, "Proving a
definition").

A case set is a folder: ``install.json`` (the installation's properties, numbers and region),
``send/*.json``, ``webhooks/*.json`` and ``subscribe/*.json`` (one case a file). The offline run
(``_offline_cases``) and the live run (``_live_cases``) read it here and judge what they saw with
the same comparisons, so both prove the same thing.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.demo import Answer, ReceivedRequest

from ._webhook_signing import property_overrides, sign_webhook

__all__ = [
    "CASE_KINDS",
    "Case",
    "CaseResult",
    "CaseSet",
    "CasesUnreadable",
    "Webhook",
    "answer_of",
    "answer_with_id",
    "default_cases",
    "earlier_webhooks",
    "event_problems",
    "installation_properties",
    "load_case_set",
    "request_problems",
    "resolve",
    "sent_value",
    "step_answers",
    "step_problems",
    "webhook_of",
]

#: The case folders, in the order a run takes them.
CASE_KINDS = ("send", "webhooks", "subscribe")
_INSTALL = "install.json"


class CasesUnreadable(Exception):
    """The case set cannot be read: a missing folder or install.json, a file that is not JSON."""


@dataclass(frozen=True, slots=True)
class Case:
    """One case: its kind (a folder of :data:`CASE_KINDS`), its name (``send/sms``) and its JSON."""

    kind: str
    name: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CaseSet:
    folder: Path
    install: Mapping[str, Any]
    cases: tuple[Case, ...]


@dataclass(slots=True)
class CaseResult:
    """What one case proved: nothing wrong (passed), or each difference found."""

    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what this run did not prove, and why
    skipped: str | None = None  # why this run cannot prove the case at all (--live can)

    @property
    def passed(self) -> bool:
        return not self.problems and self.skipped is None

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def default_cases(definition_file: Path) -> Path:
    """Where a definition's case set is when ``--cases`` is not given: the folder beside it
    named after it, ``bulksms.json`` → ``bulksms.cases/`` (docs/format.md, "Proving a
    definition")."""
    return definition_file.with_suffix(".cases")


def load_case_set(path: Path) -> CaseSet:
    """The case set in folder ``path`` — or, when ``path`` is one case file
    (``…/send/sms.json``), the set holding only that case."""
    only: Path | None = None
    folder = path
    if path.is_file():
        only, folder = path, path.parent.parent
        if path.parent.name not in CASE_KINDS:
            raise CasesUnreadable(
                f"{path}: a case file sits in a case set's {', '.join(CASE_KINDS)} folder"
            )
    if not folder.is_dir():
        raise CasesUnreadable(f"{folder}: no such case folder")
    install = _read(folder / _INSTALL)
    cases: list[Case] = []
    for kind in CASE_KINDS:
        for file in sorted((folder / kind).glob("*.json")):
            if only is None or file.resolve() == only.resolve():
                cases.append(Case(kind=kind, name=f"{kind}/{file.stem}", data=_read(file)))
    return CaseSet(folder=folder, install=install, cases=tuple(cases))


#: The most webhook cases one case may have posted before its own body (``after``).
MAX_AFTER = 5


def earlier_webhooks(
    cases: CaseSet, data: Mapping[str, Any], result: CaseResult
) -> list[Mapping[str, Any]] | None:
    """(ext) The webhook cases a case names in ``after``, read from its set's folder: their bodies
    are posted first to the same installation and their events not checked, so that a case can
    prove what the gateway makes of a body after another case's — a duplicate across cases
    (docs/format.md, "Proving a definition"). None, with the problem added to ``result``, when
    ``after`` is not such a list."""
    names = data.get("after", [])
    if not isinstance(names, list) or len(names) > MAX_AFTER:
        result.problems.append(f'"after" must be a list of at most {MAX_AFTER} webhook case names')
        return None
    earlier: list[Mapping[str, Any]] = []
    for name in names:
        kind, _, stem = str(name).partition("/")
        file = cases.folder / "webhooks" / f"{stem}.json"
        if kind != "webhooks" or not stem or "/" in stem or not file.is_file():
            result.problems.append(f'"after" names {name!r}, which is no webhooks case of this set')
            return None
        earlier.append(_read(file))
    return earlier


def _read(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CasesUnreadable(
            f"{file}: cannot read: {exc.strerror or type(exc).__name__}"
        ) from None
    except ValueError as exc:
        raise CasesUnreadable(f"{file}: is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CasesUnreadable(f"{file}: is not a JSON object")
    return data


def installation_properties(
    install: Mapping[str, Any], webhook_auth: Mapping[str, Any] | None, extra: Any = None
) -> dict[str, str]:
    """The installation's property values: install.json's, a send case's own ``properties``
    (a variant's choice; one given as null is left out) and the public keys the run's test
    signatures verify with."""
    merged = {
        **install.get("properties", {}),
        **(extra if isinstance(extra, dict) else {}),
        **property_overrides(webhook_auth),
    }
    return {name: str(value) for name, value in merged.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook case's request as the provider sends it: signed for the public ``url``."""

    method: str
    url: str
    query: str
    body: bytes
    headers: dict[str, str]


def webhook_of(
    case: Mapping[str, Any],
    webhook_auth: Mapping[str, Any] | None,
    properties: Mapping[str, str],
    webhook_url: str,
    ours: Mapping[str, str],
) -> Webhook:
    """A webhook case's request to ``webhook_url``: its body (``body`` as JSON, else
    ``body_text``) and query with the run-time values ``ours`` filled in, its headers and
    content type (default JSON), and the headers that sign it with the test secrets."""
    if "body" in case:
        body = json.dumps(resolve(case["body"], ours)).encode()
    else:
        body = str(resolve(case.get("body_text", ""), ours)).encode()
    query = str(resolve(case.get("query", ""), ours))
    url = webhook_url + (f"?{query}" if query else "")
    method = str(case.get("method", "POST")).upper()
    content_type = case.get("content_type", "application/json")
    headers = {**case.get("headers", {})}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update(
        sign_webhook(webhook_auth, properties, method=method, url=url, headers=headers, body=body)
    )
    return Webhook(method=method, url=url, query=query, body=body, headers=headers)


def answer_of(spec: Mapping[str, Any]) -> Answer:
    """A case's provider answer (``status``, ``json`` or ``text``, ``headers``)."""
    return Answer(
        status=spec.get("status", 200),
        json=spec.get("json"),
        text=spec.get("text"),
        headers=tuple((spec.get("headers") or {}).items()),
    )


def answer_with_id(doc: Mapping[str, Any], provider_id: str) -> Answer:
    """A 2xx answer whose body carries ``provider_id`` where the definition's response_map
    captures ``$messageid$`` — and what its response_rules require (docs/format.md,
    "response_rules"): the first accepted value at each pointer that must be one_of."""
    request = doc["API"]["SendMessage"]
    response_map = request.get("response_map")
    if response_map == "$messageid$":
        return Answer(text=provider_id)
    body = _fill(response_map, provider_id)
    for condition in request.get("response_rules", {}).get("require", []):
        if "pointer" in condition and "one_of" in condition:
            body = _put(body, condition["pointer"].split("/")[1:], condition["one_of"][0])
    return Answer(json=body)


def _put(tree: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(tree, list) and key.isdigit():
        tree[int(key)] = _put(tree[int(key)], rest, value)
        return tree
    tree = tree if isinstance(tree, dict) else {}
    tree[key] = _put(tree.get(key), rest, value)
    return tree


def _fill(pattern: Any, provider_id: str) -> Any:
    if isinstance(pattern, dict):
        return {k: _fill(v, provider_id) for k, v in pattern.items()}
    if isinstance(pattern, list):
        return [_fill(p, provider_id) for p in pattern]
    if isinstance(pattern, str) and "$messageid$" in pattern:
        return provider_id
    if isinstance(pattern, str) and pattern.startswith("$") and pattern.endswith("$"):
        return None
    return pattern


def resolve(tree: Any, values: Mapping[str, str]) -> Any:
    """``tree`` with the run-time placeholders (``$webhook_url$``, ``$gateway_id$``) filled."""
    if isinstance(tree, dict):
        return {k: resolve(v, values) for k, v in tree.items()}
    if isinstance(tree, list):
        return [resolve(v, values) for v in tree]
    if isinstance(tree, str):
        for name, value in values.items():
            tree = tree.replace(name, value)
    return tree


def sent_value(expect: Any, sent: Any, name: str = "$gateway_id$") -> str | None:
    """What the provider received where the case expects ``name`` (a failed send has no reply
    to read the gateway's message id from)."""
    if expect == name and isinstance(sent, str):
        return sent
    if isinstance(expect, dict) and isinstance(sent, dict):
        pairs = [(v, sent.get(k)) for k, v in expect.items()]
    elif isinstance(expect, list) and isinstance(sent, list):
        pairs = list(zip(expect, sent, strict=False))
    else:
        return None
    for inner, got in pairs:
        found = sent_value(inner, got, name)
        if found:
            return found
    return None


def request_problems(received: ReceivedRequest, expect: Mapping[str, Any], label: str) -> list[str]:
    """How the request the provider received differs from the one the case expects."""
    problems: list[str] = []

    def differs(what: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{label} {what}: got {_shown(got)}, want {_shown(want)}")

    differs("method", received.method, expect["method"])
    differs("path", received.path, expect["path"])
    if "query" in expect:
        differs("query", _multi(received.query), _multi_expected(expect["query"]))
    headers = {k.lower(): v for k, v in received.headers}
    for name, value in expect.get("headers", {}).items():
        got = headers.get(name.lower())
        if value == "Bearer $jwt$":  # a token signed per request: its shape, not its bytes
            if not re.fullmatch(r"Bearer [\w-]+\.[\w-]+\.[\w-]+", got or ""):
                problems.append(f"{label} header {name}: got {_shown(got)}, want a signed JWT")
        else:
            differs(f"header {name}", got, value)
    if "json" in expect:
        differs("JSON body", received.json, expect["json"])
    if "body_text" in expect:  # the exact body (an XML document)
        differs("body", received.body.decode("utf-8", "replace"), expect["body_text"])
    if "form" in expect:
        form = urllib.parse.parse_qsl(
            received.body.decode("utf-8", "replace"), keep_blank_values=True
        )
        differs("form", _multi(tuple(form)), _multi_expected(expect["form"]))
    if "multipart" in expect:
        parts = tuple(
            (p.name or "", p.data.decode("utf-8", "replace")) for p in received.parts or ()
        )
        differs("multipart", _multi(parts), _multi_expected(expect["multipart"]))
    return problems


def step_answers(steps: Sequence[Mapping[str, Any]]) -> dict[str, list[Answer]]:
    """A Subscribe case's answers by the path each step's request goes to, in order — as the
    fake provider is scripted: each path's answers in turn, the last one repeating."""
    answers: dict[str, list[Answer]] = {}
    for step in steps:
        answers.setdefault(step["expect"]["path"], []).append(answer_of(step.get("answer", {})))
    return answers


def step_problems(
    received: Sequence[ReceivedRequest],
    steps: Sequence[Mapping[str, Any]],
    webhook_url: str,
    label: str,
) -> list[str]:
    """How the requests a Subscribe (or, ``label`` "unsubscribe ", Unsubscribe) run made differ
    from a case's ``steps``: which were made, in order, then each one's content."""
    made = [(r.method, r.path) for r in received]
    wanted = [(s["expect"]["method"], s["expect"]["path"]) for s in steps]
    problems = [] if made == wanted else [f"{label}requests made {made}, want {wanted}"]
    values = {"$webhook_url$": webhook_url}
    for number, (request, step) in enumerate(zip(received, steps, strict=False), 1):
        problems += request_problems(
            request, resolve(step["expect"], values), f"{label}request {number}"
        )
    return problems


def event_problems(
    got: Mapping[str, Any], expected: Mapping[str, Any], label: str, sent_message_id: str | None
) -> list[str]:
    """How an event (``type``, ``message_id`` and the Event fields by name) differs from the
    one the case expects; ``message_id`` is expected to be the message the case sent first."""
    problems = []
    for name, want in expected.items():
        if name == "message_id":
            want = sent_message_id
        if name not in got:
            problems.append(f"{label}: the case names an unknown event field {name!r}")
        elif got[name] != want:
            problems.append(f"{label} {name}: got {_shown(got[name])}, want {_shown(want)}")
    return problems


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


def _multi(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _multi_expected(expected: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in expected.items()
    }
