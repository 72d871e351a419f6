"""``msgbridge test --live``: a definition's cases through a running gateway (docs/format.md,
"Proving a definition").

Each case gets a gateway of its own — ``build_server`` as ``msgbridge serve`` runs it: embedded
SQLite in a temporary folder, the webhook sidecar, gRPC and HTTP on 127.0.0.1, an outbound
policy allowing only loopback — with the definition file registered unchanged and its provider
calls — OAuth2 token requests included — sent to the fake provider by a stand-in
(``--provider-stand-in``). What the provider receives is read from the fake; what the caller gets,
from the gRPC API; the events, from the event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import yarl

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import build_server
from server.config import Settings
from server.demo import Answer, RunningFakeProvider, start_fake_provider
from server.engine import Definition
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
    sent_value,
    step_answers,
    step_problems,
    webhook_of,
)
from ._errors import MsgbridgeError
from ._offline_cases import ORG, SENT_FIRST_TO, posts, send_of

__all__ = ["live_settings", "run_cases_live", "run_live"]

#: Every event type, named: the later ones are listed only when asked for (docs/format.md,
#: "More event types").
_TYPE_NAMES = {
    gateway_pb2.Event.MESSAGE: "message",
    gateway_pb2.Event.MMS: "mms",
    gateway_pb2.Event.MESSAGE_DELIVERED: "messageDelivered",
    gateway_pb2.Event.MESSAGE_FAILED: "messageFailed",
    gateway_pb2.Event.MESSAGE_SENT: "messageSent",
    gateway_pb2.Event.OPTED_OUT: "optedOut",
    gateway_pb2.Event.OPTED_IN: "optedIn",
    gateway_pb2.Event.MESSAGE_READ: "messageRead",
    gateway_pb2.Event.MESSAGE_STATUS: "messageStatus",
    gateway_pb2.Event.TYPING: "typing",
    gateway_pb2.Event.CONVERSATION_STARTED: "conversationStarted",
    gateway_pb2.Event.MESSAGE_DELETED: "messageDeleted",
}
_ALL_TYPES = sorted(_TYPE_NAMES)
#: How long a case waits for what the gateway does in the background (a Subscribe, a held
#: receipt released): generously, as a busy machine is slow.
_WAIT_S = 30.0
#: Every address but IPv4 loopback (127.0.0.0/8), as --outbound-deny entries.
_ALL_BUT_LOOPBACK = (
    *sorted(
        str(n)
        for n in ipaddress.IPv4Network("0.0.0.0/0").address_exclude(
            ipaddress.IPv4Network("127.0.0.0/8")
        )
    ),
    "::/0",
)
#: How long a receipt for an unknown message is held (--receipt-wait) in the live gateway.
RECEIPT_WAIT_S = 0.2


def run_live(
    definition_json: str, doc: Mapping[str, Any], definition: Definition, cases: CaseSet
) -> list[CaseResult]:
    """Every case of ``cases`` through a gateway of its own; the gateway's logs kept quiet but
    for errors (the stand-in's start WARNING is what this run asks for)."""
    with _quiet("server"):
        return asyncio.run(run_cases_live(definition_json, doc, definition, cases))


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


async def run_cases_live(
    definition_json: str,
    doc: Mapping[str, Any],
    definition: Definition,
    cases: CaseSet,
    *,
    settings: Callable[[Settings], Settings] | None = None,
) -> list[CaseResult]:
    """:func:`run_live` in a running event loop; ``settings`` may change each gateway's
    settings (the project's tests run it on PostgreSQL too)."""
    fake = await start_fake_provider()
    try:
        with tempfile.TemporaryDirectory(prefix="msgbridge-test-") as folder:
            run = _LiveRun(definition_json, doc, definition, cases, fake, Path(folder))
            run.adjust = settings
            return [await run.case(number, case) for number, case in enumerate(cases.cases)]
    finally:
        await fake.aclose()


def live_settings(data_dir: Path, integration_id: str, fake_url: str) -> Settings:
    """A live run's gateway: as ``msgbridge serve`` runs it, on 127.0.0.1 with embedded SQLite
    in ``data_dir``, the integration's provider calls sent to the fake by a stand-in, and an
    outbound policy that lets calls reach loopback only — every other address is denied, so a
    call the stand-in does not redirect never leaves the machine — and one attempt a send."""
    return Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=data_dir,
        outbound_allow=("127.0.0.1",),
        outbound_deny=_ALL_BUT_LOOPBACK,
        provider_stand_in=(f"{integration_id}={fake_url}",),
        sidecar=True,
        provider_timeout_s=5.0,
        send_deadline_s=10.0,
        # A case proves how the definition judges one answer; the queue's retries of a
        # retryable one are the gateway's own (docs/delivery.md, "Retries").
        send_max_attempts=1,
        # A case's media URLs are the provider's examples, not files to fetch: its event is
        # compared as the webhook gave it (docs/media.md, "Inbound files", is the gateway's).
        media_fetch=False,
        receipt_wait_s=RECEIPT_WAIT_S,
        log_format="text",
    )


class _Gateway:
    """One running gateway with a channel to it."""

    def __init__(self, server: Any, channel: grpc.aio.Channel) -> None:
        self.server = server
        self.channel = channel
        self.stub = gateway_pb2_grpc.GatewayStub(channel)


class _LiveRun:
    def __init__(
        self,
        definition_json: str,
        doc: Mapping[str, Any],
        definition: Definition,
        cases: CaseSet,
        fake: RunningFakeProvider,
        folder: Path,
    ) -> None:
        self._json = definition_json
        self._doc = doc
        self._definition = definition
        self._install = cases.install
        self._cases = cases
        self._auth = doc.get("WebhookAuth")
        self._fake = fake
        self._folder = folder
        self.adjust: Callable[[Settings], Settings] | None = None

    async def case(self, number: int, case: Case) -> CaseResult:
        result = CaseResult(case.name)
        self._fake.state.reset()
        try:
            async with self._gateway(number) as gateway:
                if case.kind == "send":
                    await self._send(gateway, case.data, result)
                elif case.kind == "webhooks":
                    await self._webhook(gateway, case.data, result)
                else:
                    await self._subscribe(gateway, case.data, result)
        except grpc.aio.AioRpcError as exc:
            error = MsgbridgeError(exc.code(), exc.details() or "", call=exc)
            result.problems.append(f"the gateway refused a call: {error}")
        except (KeyError, TypeError, ValueError) as exc:
            result.problems.append(f"the case cannot be run: {type(exc).__name__}: {exc}")
        except (OSError, aiohttp.ClientError) as exc:
            result.problems.append(f"the webhook could not be posted: {exc}")
        return result

    @contextlib.asynccontextmanager
    async def _gateway(self, number: int) -> AsyncIterator[_Gateway]:
        settings = live_settings(
            self._folder / f"case-{number}", self._definition.id, self._fake.url
        )
        server, port = await build_server(self.adjust(settings) if self.adjust else settings)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield _Gateway(server, channel)
        finally:
            await channel.close()
            await server.stop(0)

    async def _enable(
        self, gateway: _Gateway, extra: Any = None
    ) -> tuple[gateway_pb2.Installation, dict[str, str]]:
        """The definition registered and an installation enabled with the case set's values."""
        properties = installation_properties(self._install, self._auth, extra)
        await gateway.stub.RegisterIntegration(
            gateway_pb2.RegisterIntegrationRequest(definition_json=self._json)
        )
        installation = await gateway.stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=ORG,
                integration_id=self._definition.id,
                properties=properties,
                numbers=[
                    gateway_pb2.NumberAssignment(number=n, users=u)
                    for n, u in self._install.get("numbers", {}).items()
                ],
                default_region=self._install.get("region", ""),
            )
        )
        return installation, properties

    async def _installed(
        self, gateway: _Gateway, extra: Any = None
    ) -> tuple[gateway_pb2.Installation, dict[str, str]]:
        """Enabled, its Subscribe (if any) settled and forgotten, the token endpoint scripted."""
        installation, properties = await self._enable(gateway, extra)
        await _settled(gateway, installation)
        self._fake.state.reset()
        self._script_token_endpoint()
        return installation, properties

    def _script_token_endpoint(self) -> str | None:
        """For OAuth2 client credentials, the token endpoint answers as any OAuth2 server does;
        its path, or None."""
        oauth = self._doc.get("OAuth2")
        if not (isinstance(oauth, dict) and oauth.get("flow_type", {}).get("default") == "1"):
            return None
        path = urllib.parse.urlsplit(oauth["token_endpoint"]).path
        token = {"access_token": "test-access-token", "token_type": "Bearer", "expires_in": 3600}
        self._fake.state.script(path, Answer(json=token))
        return path

    # -- sends ------------------------------------------------------------------------------

    async def _send(self, gateway: _Gateway, data: Mapping[str, Any], result: CaseResult) -> None:
        installation, _ = await self._installed(gateway, data.get("properties"))
        answers = data.get("answer", {})
        self._fake.state.script(
            "*", *(answer_of(a) for a in (answers if isinstance(answers, list) else [answers]))
        )
        token = data.get("oauth2_token")
        if token is not None:  # OAuth2 client credentials: the token request comes first
            self._fake.state.script(token["expect"]["path"], answer_of(token["answer"]))
        wanted_error = data.get("expect_error")
        reply: gateway_pb2.SendReply | None = None
        try:
            reply = await _send(gateway, data["request"])
        except grpc.aio.AioRpcError as exc:
            error = MsgbridgeError(exc.code(), exc.details() or "", call=exc)
            if wanted_error is None:
                result.problems.append(f"the send fails: {error}")
            else:
                _judge_error(error, wanted_error, result)
        else:
            if wanted_error is not None:
                want = f"{wanted_error['code']} {wanted_error['reason']}"
                result.problems.append(f"the send succeeded, want {want}")
        requests = self._fake.state.requests
        if token is not None and requests:
            token_request, *requests = requests
            result.problems += request_problems(token_request, token["expect"], "token request")
        expects = data["expect"] if isinstance(data["expect"], list) else [data["expect"]]
        if len(requests) != len(expects):
            made = [f"{r.method} {r.path}" for r in requests]
            result.problems.append(f"{len(requests)} requests made {made}, want {len(expects)}")
        gateway_id = (
            reply.message_id
            if reply
            else (sent_value(expects[0].get("json"), requests[0].json) if requests else None)
        )
        values = {"$webhook_url$": installation.webhook_url, "$gateway_id$": gateway_id or ""}
        for number, (got, expect) in enumerate(zip(requests, expects, strict=False), 1):
            result.problems += request_problems(got, resolve(expect, values), f"request {number}")
        wanted = data.get("expect_reply", {})
        if reply is not None:
            if "provider_message_id" in wanted:
                _differs(result, "provider_message_id", reply.provider_message_id, wanted)
            if "provider_message_ids" in wanted:
                _differs(result, "provider_message_ids", list(reply.provider_message_ids), wanted)
        if wanted_error is not None and gateway_id:
            message = await gateway.stub.GetMessage(
                gateway_pb2.GetMessageRequest(message_id=gateway_id)
            )
            if message.state != gateway_pb2.Message.FAILED:
                state = gateway_pb2.Message.State.Name(message.state)
                result.problems.append(f"the message is recorded {state}, want FAILED")
            if wanted_error["reason"] not in message.error:
                result.problems.append(
                    f"the message's error {message.error!r} does not name {wanted_error['reason']}"
                )

    # -- Subscribe --------------------------------------------------------------------------

    async def _subscribe(
        self, gateway: _Gateway, data: Mapping[str, Any], result: CaseResult
    ) -> None:
        """Enabling makes exactly the case's ``steps``; disabling, its ``unsubscribe`` steps."""
        token_path = self._script_token_endpoint()
        self._script_steps(data["steps"])
        installation, _ = await self._enable(gateway)
        await _settled(gateway, installation)
        got = await gateway.stub.GetInstallation(
            gateway_pb2.GetInstallationRequest(installation_id=installation.id)
        )
        if got.subscription.state != gateway_pb2.Subscription.SUBSCRIBED:
            state = gateway_pb2.Subscription.State.Name(got.subscription.state)
            result.problems.append(f"subscription {state}: {got.subscription.last_error}")
        result.problems += self._step_problems(data["steps"], installation, token_path, "")
        if "unsubscribe" in data:
            self._fake.state.reset()
            token_path = self._script_token_endpoint()
            self._script_steps(data["unsubscribe"])
            await gateway.stub.DisableIntegration(
                gateway_pb2.DisableIntegrationRequest(installation_id=installation.id)
            )
            result.problems += self._step_problems(
                data["unsubscribe"], installation, token_path, "unsubscribe "
            )

    def _script_steps(self, steps: list[dict[str, Any]]) -> None:
        """Each step's answer, in order, for the path its request goes to."""
        for path, scripted in step_answers(steps).items():
            self._fake.state.script(path, *scripted)

    def _step_problems(
        self,
        steps: list[dict[str, Any]],
        installation: gateway_pb2.Installation,
        token_path: str | None,
        label: str,
    ) -> list[str]:
        received = [r for r in self._fake.state.requests if r.path != token_path]
        return step_problems(received, steps, installation.webhook_url, label)

    # -- webhooks ---------------------------------------------------------------------------

    async def _webhook(
        self, gateway: _Gateway, data: Mapping[str, Any], result: CaseResult
    ) -> None:
        installation, properties = await self._installed(gateway)
        sent: gateway_pb2.SendReply | None = None
        if "sent_first" in data:
            first = data["sent_first"]
            answer = (
                answer_of(first["answer"])  # the documented answer, where it is not JSON (XML)
                if "answer" in first
                else answer_with_id(self._doc, first["provider_message_id"])
            )
            self._fake.state.script("*", answer)  # the token endpoint keeps its own script
            numbers = list(self._install.get("numbers", {}))
            sent = await _send(
                gateway, {"from": numbers[0], "to": SENT_FIRST_TO, "text": "sent first"}
            )
            if sent.provider_message_id != first["provider_message_id"]:
                result.problems.append(
                    f"the message sent first got provider id {sent.provider_message_id!r}, "
                    f"want {first['provider_message_id']!r}"
                )
        earlier = earlier_webhooks(self._cases, data, result)
        if earlier is None:
            return
        for other in earlier:  # posted first; what this case's own posts give is checked
            if not await self._post(gateway, installation, other, properties, sent, result):
                return
        before = await gateway.stub.ListEvents(
            gateway_pb2.ListEventsRequest(page_size=1000, types=_ALL_TYPES)
        )
        for _ in range(posts(data)):  # a provider's retries: their events are duplicates
            if not await self._post(gateway, installation, data, properties, sent, result):
                return
        expected = data["expect_events"]
        events = await _events_after(gateway, before, len(expected))
        if len(events) != len(expected):
            shown = [f"{_TYPE_NAMES[e.type]} {e.provider_message_id}".strip() for e in events]
            result.problems.append(f"{len(events)} events {shown}, want {len(expected)}")
        for number, (event, want_event) in enumerate(zip(events, expected, strict=False), 1):
            result.problems += event_problems(
                _fields(event), want_event, f"event {number}", sent.message_id if sent else None
            )

    async def _post(
        self,
        gateway: _Gateway,
        installation: gateway_pb2.Installation,
        data: Mapping[str, Any],
        properties: dict[str, str],
        sent: gateway_pb2.SendReply | None,
        result: CaseResult,
    ) -> bool:
        """One post of the case's body through the sidecar; False once it is refused."""
        ours = {"$gateway_id$": sent.message_id} if sent is not None else {}
        webhook = webhook_of(data, self._auth, properties, installation.webhook_url, ours)
        path = urllib.parse.urlsplit(installation.webhook_url).path
        suffix = f"?{webhook.query}" if webhook.query else ""
        url = f"http://127.0.0.1:{gateway.server.http_port}{path}{suffix}"
        method, body, headers = webhook.method, webhook.body, webhook.headers
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, yarl.URL(url, encoded=True), data=body, headers=headers) as got,
        ):
            answered = await got.read()
            if not 200 <= got.status < 300:
                text = answered.decode("utf-8", "replace")
                result.problems.append(f"answered {got.status}: {text}")
                return False
            if "expect_answer" in data:  # docs/format.md, "Answers"
                wanted = data["expect_answer"]
                seen = (got.status, got.headers.get("Content-Type"), answered)
                want = (
                    wanted.get("status", 200),
                    wanted["content_type"],
                    wanted["body_text"].encode("utf-8"),
                )
                if seen != want:
                    result.problems.append(f"answer (status, type, body): got {seen}, want {want}")
        return True


async def _settled(gateway: _Gateway, installation: gateway_pb2.Installation) -> None:
    """Once the installation's Subscribe (if any) is no longer pending."""
    deadline = asyncio.get_running_loop().time() + _WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        got = await gateway.stub.GetInstallation(
            gateway_pb2.GetInstallationRequest(installation_id=installation.id)
        )
        if got.subscription.state != gateway_pb2.Subscription.PENDING:
            return
        await asyncio.sleep(0.02)


async def _send(gateway: _Gateway, request: Mapping[str, Any]) -> gateway_pb2.SendReply:
    send = send_of(request)
    if send.kind is MessageKind.MMS:
        file = gateway_pb2.SendFileRequest(
            media_url=send.media_url,
            media_urls=send.media_urls,
            text=send.text,
            media_type=send.media_type,
            filename=send.filename,
            org_id=ORG,
            to=send.to,
            extension=send.extension,
            domain=send.domain,
            reply_to=send.reply_to,
            media_kind=send.media_kind,
        )
        setattr(file, "from", send.from_number)
        reply: gateway_pb2.SendReply = await gateway.stub.SendFile(file)
        return reply
    message = gateway_pb2.SendMessageRequest(
        text=send.text,
        org_id=ORG,
        to=send.to,
        extension=send.extension,
        domain=send.domain,
        reply_to=send.reply_to,
        replies=[
            gateway_pb2.QuickReply(id=r.id, title=r.title, description=r.description)
            for r in send.replies
        ],
    )
    if send.template_name:
        message.template.CopyFrom(
            gateway_pb2.MessageTemplate(
                name=send.template_name,
                language=send.template_language,
                parameters=send.template_parameters,
            )
        )
    setattr(message, "from", send.from_number)
    reply = await gateway.stub.SendMessage(message)
    return reply


def _judge_error(error: MsgbridgeError, wanted: Mapping[str, Any], result: CaseResult) -> None:
    """The failed send's gRPC code, ErrorInfo reason and metadata are the case's."""
    got = (error.code.name, error.reason)
    if got != (wanted["code"], wanted["reason"]):
        result.problems.append(
            f"error: got {got}, want {wanted['code']} {wanted['reason']} ({error.message})"
        )
    metadata = dict(error.error_info.metadata) if error.error_info is not None else {}
    for key, value in wanted.get("metadata", {}).items():
        if metadata.get(key) != value:
            result.problems.append(
                f"error metadata {key}: got {metadata.get(key)!r}, want {value!r}"
            )


def _differs(result: CaseResult, name: str, got: Any, wanted: Mapping[str, Any]) -> None:
    if got != wanted[name]:
        result.problems.append(f"{name}: got {got!r}, want {wanted[name]!r}")


async def _events_after(
    gateway: _Gateway, before: gateway_pb2.ListEventsResponse, count: int
) -> list[gateway_pb2.Event]:
    """The events after ``before``, once there are ``count`` (a held receipt is released after
    the receipt wait) or the wait is over."""
    after = before.events[-1].cursor if before.events else 0
    events: list[gateway_pb2.Event] = []
    deadline = asyncio.get_running_loop().time() + _WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        listed = await gateway.stub.ListEvents(
            gateway_pb2.ListEventsRequest(after_cursor=after, page_size=1000, types=_ALL_TYPES)
        )
        events = list(listed.events)
        if len(events) >= count:
            break
        await asyncio.sleep(0.05)
    return events


def _fields(event: gateway_pb2.Event) -> dict[str, Any]:
    return {
        "type": _TYPE_NAMES.get(event.type, str(event.type)),
        "from": getattr(event, "from"),
        "to": event.to,
        "text": event.text,
        "media_urls": list(event.media_urls),
        "provider_message_id": event.provider_message_id,
        "status": event.status,
        "error": event.error,
        # (ext) the model's kept captures (docs/format.md, "Built values, extra fields and …")
        "fields": dict(event.fields),
        "message_id": event.message_id,
    }
