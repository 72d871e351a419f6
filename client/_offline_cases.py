"""``msgbridge test`` without a server: a definition's cases through the engine and the send
path's pure functions (docs/format.md, "Proving a definition").

A send case is planned (``plan_requests``), rendered (``render_request``) and each of its answers
judged (``judge_send_answer``) as ``SendPath`` does; a webhook case is signed with test secrets,
verified (``verify_webhook``), matched (``match_webhook``) and routed as the ingest path does —
its receipts to the message the case sent first, its duplicates (across the set's cases too)
dropped by the ingest path's own key. A Subscribe case is run step by step by the functions the
gateway's ``SubscriptionKeeper`` runs (``next_step``, ``judge_step_answer``): each request
rendered and compared with the case's, its scripted answer fed back, what it captures kept for
the later steps and for Unsubscribe. What only a running gateway shows — the OAuth2 token
request, the message recorded FAILED, a receipt held until its send's reply — is proven by
``--live`` (``_live_cases``).
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict

from server.core import (
    Kept,
    QuickReply,
    SendRequest,
    StepFailure,
    SubscribeRun,
    event_dedupe_key,
    judge_send_answer,
    judge_step_answer,
    next_step,
    normalize_address,
    numbered_after,
    partially_sent,
    plan_requests,
    render_step,
    send_variables,
)
from server.demo import Answer, ReceivedRequest
from server.engine import (
    Definition,
    HandshakeMatch,
    HandshakeRefused,
    InboundEvent,
    JwtAuth,
    RenderedRequest,
    RenderError,
    RequestTemplate,
    TokenAuth,
    WebhookAnswer,
    WebhookParseError,
    WebhookRequest,
    answer_handshake,
    choose_answer,
    match_handshake,
    match_webhook,
    render_request,
)
from server.errors import FailedPrecondition, GatewayError
from server.oauth import installation_secrets, sign_jwt
from server.outbound import ProviderResponse
from server.security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook
from server.sidecar import webhook_path
from server.store import MessageKind

from ._cases import (
    Case,
    CaseResult,
    CaseSet,
    answer_of,
    answer_with_id,
    earlier_webhooks,
    event_problems,
    installation_properties,
    request_problems,
    resolve,
    step_answers,
    step_problems,
    webhook_of,
)

__all__ = ["LIVE_ONLY", "MAX_POSTS", "posts", "run_offline", "send_of"]

#: What the offline run leaves to --live, by case key (said in the case's line).
LIVE_ONLY = {"oauth2_token": "the OAuth2 token request"}
#: The most times one webhook case's body is posted (``posts``).
MAX_POSTS = 5
#: The caller of every case's send and the webhook URL the offline installation has.
ORG = "org-1"
_OFFLINE_BASE = "http://127.0.0.1:0"
#: The OAuth2 access token a case's token endpoint gives when it names none.
TEST_ACCESS_TOKEN = "test-access-token"  # noqa: S105 - not a secret: the fake's token
#: The number a message sent first goes to (a receipt without `to` reports it).
SENT_FIRST_TO = "+15557654321"


def run_offline(doc: Mapping[str, Any], definition: Definition, cases: CaseSet) -> list[CaseResult]:
    """Every case of ``cases`` against ``definition`` (``doc`` its JSON), in order."""
    run = _OfflineRun(doc, definition, cases)
    return [run.case(case) for case in cases.cases]


def send_of(request: Mapping[str, Any]) -> SendRequest:
    """A send case's ``request`` as the send path gets it; (ext) with its ``reply_to``, an SMS's
    ``replies`` and ``template``, an MMS's ``media_kind`` (docs/format.md, "Replies, templates
    and reply-to")."""
    mms = request.get("kind", "sms") == "mms"
    template = request.get("template") or {}
    return SendRequest(
        kind=MessageKind.MMS if mms else MessageKind.SMS,
        org_id=ORG,
        from_number=request["from"],
        to=request["to"],
        text=request.get("text", ""),
        media_url=request.get("media_url", "") if mms else "",
        media_urls=tuple(request.get("media_urls", ())) if mms else (),
        media_type=request.get("media_type", ""),
        filename=request.get("filename", ""),
        extension=request.get("extension", ""),
        domain=request.get("domain", ""),
        reply_to=request.get("reply_to", ""),
        replies=tuple(
            QuickReply(r["id"], r["title"], r.get("description", ""))
            for r in request.get("replies", ())
        )
        if not mms
        else (),
        template_name=template.get("name", "") if not mms else "",
        template_language=template.get("language", "") if not mms else "",
        template_parameters=tuple(template.get("parameters", ())) if not mms else (),
        media_kind=request.get("media_kind", "") if mms else "",
    )


def posts(case: Mapping[str, Any]) -> int:
    """How many times a webhook case's body is posted (``posts``, default 1)."""
    count = case.get("posts", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_POSTS:
        raise ValueError(f'"posts" must be a whole number from 1 to {MAX_POSTS}')
    return count


class _OfflineRun:
    def __init__(self, doc: Mapping[str, Any], definition: Definition, cases: CaseSet) -> None:
        self._doc = doc
        self._definition = definition
        self._install = cases.install
        self._cases = cases
        self._auth = doc.get("WebhookAuth")
        self._webhook_url = _OFFLINE_BASE + webhook_path(definition.id, "offline-token")
        self._seen: set[str] = set()  # dedupe keys of the events the set's webhooks gave

    def _properties(self, extra: Any = None) -> dict[str, str]:
        """The installation's property values, with the defaults enabling it fills in."""
        given = installation_properties(self._install, self._auth, extra)
        defaults = {
            p.name: p.default
            for p in self._definition.properties
            if p.default is not None and p.name not in given
        }
        return given | defaults

    def case(self, case: Case) -> CaseResult:
        result = CaseResult(case.name)
        try:
            if case.kind == "send":
                self._send(case.data, result)
            elif case.kind == "webhooks":
                self._webhook(case.data, result)
            else:
                self._subscribe(case.data, result)
        except (KeyError, TypeError, ValueError) as exc:
            result.problems.append(f"the case cannot be run: {type(exc).__name__}: {exc}")
        return result

    # -- sends ------------------------------------------------------------------------------

    def _send(self, data: Mapping[str, Any], result: CaseResult) -> None:
        properties = self._properties(data.get("properties"))
        definition = self._definition.choose(properties)
        send = send_of(data["request"])
        template = definition.send_message if send.kind is MessageKind.SMS else definition.send_file
        if template is None:
            result.problems.append("the definition has no SendFile request")
            return
        gateway_id = str(uuid.uuid4())
        variables = properties | send_variables(send, gateway_id, self._webhook_url)
        bearer = _bearer(definition, properties, data)
        answers = data.get("answer", {})
        scripted = [answer_of(a) for a in (answers if isinstance(answers, list) else [answers])]
        received, ids, error = self._requests(
            definition, template, variables, bearer, scripted, properties
        )
        expects = data["expect"] if isinstance(data["expect"], list) else [data["expect"]]
        if len(received) != len(expects):
            made = [f"{r.method} {r.path}" for r in received]
            result.problems.append(f"{len(received)} requests made {made}, want {len(expects)}")
        values = {"$webhook_url$": self._webhook_url, "$gateway_id$": gateway_id}
        for number, (got, expect) in enumerate(zip(received, expects, strict=False), 1):
            result.problems += request_problems(got, resolve(expect, values), f"request {number}")
        _judge_outcome(data, ids, error, result)

    def _requests(
        self,
        definition: Definition,
        template: RequestTemplate,
        variables: Mapping[str, Any],
        bearer: str | None,
        answers: list[Answer],
        properties: Mapping[str, str],
    ) -> tuple[list[ReceivedRequest], list[str], GatewayError | None]:
        """The requests the send makes, every part's provider id and the send's error."""
        received: list[ReceivedRequest] = []
        ids: list[str] = []
        try:
            steps = plan_requests(template, variables)
        except GatewayError as error:
            return received, ids, error
        region = self._install.get("region") or None
        for number, step in enumerate(steps, 1):
            try:
                rendered = render_request(
                    definition,
                    step.template,
                    step.variables,
                    bearer_token=bearer,
                    default_region=region,
                )
            except RenderError as exc:
                return received, ids, _render_failed(definition, exc)
            received.append(_as_received(rendered, number))
            answer = answers[min(number, len(answers)) - 1] if answers else Answer()
            verdict = judge_send_answer(
                step.template,
                _response(answer, f"offline-{number}"),
                integration=definition.id,
                secrets=lambda: installation_secrets(definition, properties, tokens=(bearer,)),
            )
            if isinstance(verdict, GatewayError):
                return (
                    received,
                    ids,
                    partially_sent(verdict, number, len(steps)) if ids else verdict,
                )
            ids.append(verdict.provider_message_id or "")
        return received, ids, None

    # -- Subscribe ---------------------------------------------------------------------------

    def _subscribe(self, data: Mapping[str, Any], result: CaseResult) -> None:
        """Enabling makes exactly the case's ``steps``; disabling, its ``unsubscribe`` steps —
        each run driven as the gateway drives it (docs/format.md, "Subscribe and Unsubscribe")."""
        properties = self._properties()
        definition = self._definition.choose(properties)
        if not definition.subscribe:
            result.problems.append("the definition has no Subscribe request")
            return
        region = self._install.get("region") or None
        numbers = (
            normalize_address(n, region, definition.addresses)
            for n in self._install.get("numbers", {})
        )
        gateway = {**properties, "webhook_url": self._webhook_url, "orgid": ORG}
        run = SubscribeRun(
            requests=definition.subscribe,
            gateway=gateway,
            numbers=tuple(dict.fromkeys(n for n in numbers if n)),  # as enabling stores them
        )
        kept = Kept()  # a fresh installation: nothing kept yet
        received, failure = self._run_steps(definition, run, kept, data["steps"], properties)
        if failure is not None:
            result.problems.append(f"subscription FAILED: {failure}")
        result.problems += step_problems(received, data["steps"], self._webhook_url, "")
        if "unsubscribe" in data:
            run = SubscribeRun(
                requests=definition.unsubscribe,
                gateway=gateway,
                numbers=run.numbers,
                numbered=numbered_after(definition.subscribe),
            )
            steps = data["unsubscribe"]
            received, failure = self._run_steps(definition, run, kept, steps, properties)
            if failure is not None:  # best effort: the gateway disables all the same
                result.notes.append(f"unsubscribe failed: {failure}")
            result.problems += step_problems(received, steps, self._webhook_url, "unsubscribe ")

    def _run_steps(
        self,
        definition: Definition,
        run: SubscribeRun,
        kept: Kept,
        steps: list[dict[str, Any]],
        properties: Mapping[str, str],
    ) -> tuple[list[ReceivedRequest], str | None]:
        """The requests ``run`` makes, each answered as the fake provider answers a live run
        (the case's answers by path, in turn), and why the run failed (None: it did not)."""
        answers = step_answers(steps)
        bearer = _bearer(definition, properties, {})
        secrets = installation_secrets(definition, properties, tokens=(bearer,))
        region = self._install.get("region") or None
        received: list[ReceivedRequest] = []
        kept.retain(run.numbers)
        step = next_step(run, kept, None)
        while step is not None:
            rendered = render_step(definition, step, bearer=bearer, region=region, secrets=secrets)
            if isinstance(rendered, StepFailure):
                return received, rendered.text
            received.append(_as_received(rendered, len(received) + 1))
            scripted = answers.get(received[-1].path) or [Answer()]
            answer = scripted.pop(0) if len(scripted) > 1 else scripted[0]
            response = _response(answer, f"offline-{len(received)}")
            verdict = judge_step_answer(step, response, integration=definition.id, secrets=secrets)
            if isinstance(verdict, StepFailure):
                return received, verdict.text
            kept.record(verdict, step.number)
            step = next_step(run, kept, step)
        return received, None

    # -- webhooks ---------------------------------------------------------------------------

    def _webhook(self, data: Mapping[str, Any], result: CaseResult) -> None:
        self._seen.clear()  # each case starts from a fresh installation
        properties = self._properties()
        sent: tuple[str, str] | None = None  # sent first: our id, the provider's
        if "sent_first" in data:
            sent = self._sent_first(data["sent_first"], properties, result)
        earlier = earlier_webhooks(self._cases, data, result)
        if earlier is None:
            return
        for other in earlier:  # posted first; what this case's own posts give is checked
            if self._post(other, properties, sent, result) is None:
                return
        events: list[dict[str, Any]] = []
        for _ in range(posts(data)):  # a provider's retries: their events are duplicates
            given = self._post(data, properties, sent, result)
            if given is None:
                return
            events += given
        expected = data["expect_events"]
        if len(events) != len(expected):
            shown = [f"{e['type']} {e['provider_message_id']}".strip() for e in events]
            result.problems.append(f"{len(events)} events {shown}, want {len(expected)}")
        for number, (got_event, want_event) in enumerate(zip(events, expected, strict=False), 1):
            result.problems += event_problems(
                got_event, want_event, f"event {number}", sent[0] if sent else None
            )

    def _post(
        self,
        data: Mapping[str, Any],
        properties: dict[str, str],
        sent: tuple[str, str] | None,
        result: CaseResult,
    ) -> list[dict[str, Any]] | None:
        """One post of the case's body: the events it gives, or None once it is refused."""
        definition = self._definition
        ours = {"$gateway_id$": sent[0]} if sent else {}
        webhook = webhook_of(data, self._auth, properties, self._webhook_url, ours)
        method, query, body = webhook.method, webhook.query, webhook.body
        pairs = tuple(webhook.headers.items())
        request = WebhookRequest(
            method=method,
            content_type=webhook.headers.get("Content-Type"),
            body=body,
            query=tuple(urllib.parse.parse_qsl(query, keep_blank_values=True)),
            headers=pairs,
        )
        try:
            # (ext) a verification handshake is answered before anything else, and checked by
            # the WebhookAuth only when signed (docs/format.md, "Verification handshakes")
            handshake = match_handshake(definition, request)
        except WebhookParseError as exc:
            result.problems.append(f"answered 400: the body cannot be parsed: {exc}")
            return None
        if definition.webhook_auth is not None and (
            handshake is None or handshake.handshake.signed
        ):
            signed = SignedRequest(method=method, url=webhook.url, headers=pairs, body=body)
            try:
                verify_webhook(definition.webhook_auth, properties, signed, now=time.time())
            except WebhookAuthFailed as exc:
                result.problems.append(f"refused (401): the WebhookAuth check fails: {exc}")
                return None
        if handshake is not None:
            return self._handshake(handshake, data, properties, result)
        try:
            matched = match_webhook(definition, request)
        except WebhookParseError as exc:
            result.problems.append(f"answered 400: the body cannot be parsed: {exc}")
            return None
        if "expect_answer" in data:
            result.problems += _answer_problems(choose_answer(definition, matched), data)
        return [
            fields
            for event in matched.events
            if (fields := self._routed(definition, event, sent)) is not None
        ]

    @staticmethod
    def _handshake(
        match: HandshakeMatch,
        data: Mapping[str, Any],
        properties: dict[str, str],
        result: CaseResult,
    ) -> list[dict[str, Any]] | None:
        """(ext) A verification handshake: its answer, checked against ``expect_answer``; no
        event. A ``require`` that fails is refused, as the live endpoint answers it 403."""
        try:
            answer = answer_handshake(match, properties)
        except HandshakeRefused as exc:
            result.problems.append(f"refused (403): {exc.reason}")
            return None
        if "expect_answer" in data:
            result.problems += _answer_problems(answer, data)
        return []

    def _sent_first(
        self, first: Mapping[str, Any], properties: dict[str, str], result: CaseResult
    ) -> tuple[str, str]:
        """The message a receipt case sends first: our id and the provider id its answer gives."""
        answer = (
            answer_of(first["answer"])
            if "answer" in first
            else answer_with_id(self._doc, first["provider_message_id"])
        )
        definition = self._definition.choose(properties)
        verdict = judge_send_answer(
            definition.send_message,
            _response(answer, "offline-1"),
            integration=definition.id,
            secrets=lambda: installation_secrets(definition, properties),
        )
        provider_id = "" if isinstance(verdict, GatewayError) else verdict.provider_message_id or ""
        if provider_id != first["provider_message_id"]:
            result.problems.append(
                f"the message sent first got provider id {provider_id!r}, "
                f"want {first['provider_message_id']!r}"
            )
        return str(uuid.uuid4()), provider_id

    def _routed(
        self, definition: Definition, event: InboundEvent, sent: tuple[str, str] | None
    ) -> dict[str, Any] | None:
        """The event as the stream gives it (docs/format.md, "Numbers and routing" and
        "Receipts"), or None when it repeats one already given (docs/format.md, "Duplicates")."""
        key = event_dedupe_key(event, definition.id, "installation")
        if key is not None:
            if key in self._seen:
                return None
            self._seen.add(key)
        numbers = list(self._install.get("numbers", {}))
        fields = _event_fields(event)
        if not event.type.is_delivery:
            if not fields["to"] and len(numbers) == 1:  # through the installation's URL
                fields["to"] = numbers[0]
            return fields
        our_id = event.captures.get("gateway_id")
        ours = sent is not None and (
            (isinstance(our_id, str) and our_id.strip() == sent[0])
            or (bool(event.provider_message_id) and event.provider_message_id == sent[1])
        )
        if ours and sent is not None:  # a receipt for the message sent first
            fields.update(
                message_id=sent[0],
                text="",
                media_urls=[],
                **{"from": fields["from"] or (numbers[0] if numbers else "")},
                to=fields["to"] or SENT_FIRST_TO,
            )
        return fields


def _event_fields(event: InboundEvent) -> dict[str, Any]:
    return {
        "type": event.type.value,
        "from": event.from_number or "",
        "to": event.to_number or "",
        "text": event.text or "",
        "media_urls": list(event.media_urls),
        "provider_message_id": event.provider_message_id or "",
        "status": event.status or "",
        "error": event.error or "",
        "fields": dict(event.fields),
        "message_id": "",
    }


def _judge_outcome(
    data: Mapping[str, Any], ids: list[str], error: GatewayError | None, result: CaseResult
) -> None:
    """The send's outcome against ``expect_error`` or ``expect_reply``."""
    wanted_error = data.get("expect_error")
    if wanted_error is not None:
        if error is None:
            want = f"{wanted_error['code']} {wanted_error['reason']}"
            result.problems.append(f"the send succeeded (ids {ids}), want {want}")
            return
        got = (error.grpc_code.name, error.reason)
        if got != (wanted_error["code"], wanted_error["reason"]):
            result.problems.append(
                f"error: got {got}, want {wanted_error['code']} "
                f"{wanted_error['reason']} ({error.message})"
            )
        for key, value in wanted_error.get("metadata", {}).items():
            if error.metadata.get(key) != value:
                result.problems.append(
                    f"error metadata {key}: got {error.metadata.get(key)!r}, want {value!r}"
                )
        return
    if error is not None:
        result.problems.append(f"the send fails: {error.grpc_code.name} {error.reason}: {error}")
        return
    wanted = data.get("expect_reply", {})
    reply_ids = ids if len(ids) > 1 else [i for i in ids if i]
    first = ids[0] if ids else ""
    if "provider_message_id" in wanted and first != wanted["provider_message_id"]:
        result.problems.append(
            f"provider_message_id: got {first!r}, want {wanted['provider_message_id']!r}"
        )
    if "provider_message_ids" in wanted and reply_ids != wanted["provider_message_ids"]:
        result.problems.append(
            f"provider_message_ids: got {reply_ids}, want {wanted['provider_message_ids']}"
        )
    result.notes += [f"{what}: proven by --live" for key, what in LIVE_ONLY.items() if key in data]


def _bearer(
    definition: Definition, properties: Mapping[str, str], data: Mapping[str, Any]
) -> str | None:
    """The token the gateway would put in the request: the case's OAuth2 token endpoint's, or
    a JWT signed now with the installation's key."""
    if isinstance(definition.auth, JwtAuth):
        return sign_jwt(definition.auth, properties, now=time.time())
    if isinstance(definition.auth, TokenAuth):
        return TEST_ACCESS_TOKEN  # (ext) its token request is proven by --live
    if definition.oauth2 is None:
        return None
    given = data.get("oauth2_token", {}).get("answer", {}).get("json", {})
    token = given.get("access_token") if isinstance(given, dict) else None
    return str(token) if token else TEST_ACCESS_TOKEN


def _render_failed(definition: Definition, exc: RenderError) -> GatewayError:
    return FailedPrecondition(
        f"the request cannot be built from the installation's settings: {exc}",
        reason="RENDER_FAILED",
        metadata={"integration": definition.id, "pointer": exc.pointer},
    )


def _as_received(rendered: RenderedRequest, seq: int) -> ReceivedRequest:
    """The rendered request as the fake provider would record it."""
    parts = urllib.parse.urlsplit(rendered.url)
    return ReceivedRequest(
        seq=seq,
        method=rendered.method,
        path=urllib.parse.unquote(parts.path) or "/",
        query=tuple(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
        headers=rendered.headers,
        body=rendered.body or b"",
        answer_status=None,
        answer_id="",
    )


def _response(answer: Answer, answer_id: str) -> ProviderResponse:
    """The fake provider's answer (its body, content type and headers) as the send path reads
    it."""
    body, content_type = answer.render(answer_id)
    headers: CIMultiDict[str] = CIMultiDict([("Content-Type", content_type)])
    for name, value in answer.headers:
        if name.lower() == "content-type":
            headers["Content-Type"] = value
        else:
            headers.add(name, value)
    return ProviderResponse(status=answer.status, headers=headers, body=body, elapsed_s=0.0)


def _answer_problems(answer: WebhookAnswer, data: Mapping[str, Any]) -> list[str]:
    """How ``answer`` differs from the case's ``expect_answer`` (docs/format.md, "Answers")."""
    wanted = data["expect_answer"]
    got = (answer.status, answer.content_type, answer.body)
    want = (wanted.get("status", 200), wanted["content_type"], wanted["body_text"])
    return [] if got == want else [f"answer (status, type, body): got {got}, want {want}"]
