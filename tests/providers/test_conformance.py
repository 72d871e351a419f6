"""Every definition in integrations/ against its provider's documented API, through the service.

For each ``integrations/<provider>.json`` (a new file without fixtures fails here) and its
fixtures in ``tests/fixtures/providers/<provider>/`` (taken from the provider's documentation):

- each ``send/*.json``: the exact request the provider receives (method, path, query, headers,
  parsed body) on a fake provider standing in for the provider's host — or the requests, in
  order, when ``expect`` and ``answer`` are lists (a send of several requests) — and its
  documented answer mapped to the reply's provider message id (or ids) — or, with
  ``expect_error``, to the gRPC code, reason and metadata the caller gets and the message
  recorded FAILED with that reason;
- each ``webhooks/*.json``: the documented body, posted through the real sidecar to the
  installation's webhook URL, yields exactly the expected events on the event log (and, with
  ``expect_answer``, gets exactly that HTTP answer).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import yarl

from client._webhook_signing import property_overrides, sign_webhook
from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ..service.conftest import Gateway, GatewayFactory, rpc_details

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"
FIXTURES = ROOT / "tests" / "fixtures" / "providers"
NOT_DEFINITIONS = {"schema.json"}

PROVIDERS = sorted(p.stem for p in INTEGRATIONS.glob("*.json") if p.name not in NOT_DEFINITIONS)

_EVENT_TYPES = {
    "message": gateway_pb2.Event.MESSAGE,
    "mms": gateway_pb2.Event.MMS,
    "messageDelivered": gateway_pb2.Event.MESSAGE_DELIVERED,
    "messageFailed": gateway_pb2.Event.MESSAGE_FAILED,
    "messageSent": gateway_pb2.Event.MESSAGE_SENT,
    "optedOut": gateway_pb2.Event.OPTED_OUT,
    "optedIn": gateway_pb2.Event.OPTED_IN,
    "messageRead": gateway_pb2.Event.MESSAGE_READ,
    "messageStatus": gateway_pb2.Event.MESSAGE_STATUS,
}
# Every type, named: the later ones are listed only when asked for (docs/format.md, "More event
# types").
_ALL_TYPES = sorted(_EVENT_TYPES.values())
_BASE = re.compile(r"^[a-z]+://[^/?#]*")


def _point_at(url: str, fake_url: str) -> str:
    """The URL with its scheme and authority (placeholders included) replaced by the fake's."""
    return _BASE.sub(fake_url, url, count=1)


def _requests_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every request of a definition: its sends (and their ``then``), Subscribe, Unsubscribe."""
    requests: list[dict[str, Any]] = [r for r in doc.get("API", {}).values() if isinstance(r, dict)]
    requests.extend([r["then"] for r in requests if isinstance(r.get("then"), dict)])
    for key in ("Subscribe", "Unsubscribe"):
        value = doc.get(key)
        requests.extend(value if isinstance(value, list) else [value] if value else [])
    return requests


def local_definition(provider: str, fake_url: str) -> str:
    doc = json.loads((INTEGRATIONS / f"{provider}.json").read_text(encoding="utf-8"))
    for request in _requests_of(doc):
        request["request_url"] = _point_at(request["request_url"], fake_url)
    oauth = doc.get("OAuth2")
    if isinstance(oauth, dict):
        for key in ("authorization_endpoint", "token_endpoint"):
            if key in oauth:
                oauth[key] = _point_at(oauth[key], fake_url)
    return json.dumps(doc)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_definition_has_fixtures() -> None:
    assert PROVIDERS, "integrations/ holds no definitions"
    missing = []
    for provider in PROVIDERS:
        folder = FIXTURES / provider
        if not (folder / "install.json").exists():
            missing.append(f"{provider}: install.json")
        if not list((folder / "send").glob("*.json")):
            missing.append(f"{provider}: send/*.json")
        if not list((folder / "webhooks").glob("*.json")):
            missing.append(f"{provider}: webhooks/*.json")
    assert not missing, "fixtures missing: " + ", ".join(missing)


async def _install(
    start_gateway: GatewayFactory,
    provider: str,
    fake: RunningFakeProvider,
    properties: dict[str, str] | None = None,
) -> tuple[Gateway, gateway_pb2.Installation, dict[str, Any]]:
    gateway, installation, install = await _enable(start_gateway, provider, fake, properties)
    # Subscribe requests (if any) go to the fake too; test_subscribe_requests checks them.
    await _settle_subscription(gateway, installation)
    fake.state.reset()
    _script_token_endpoint(provider, fake)
    return gateway, installation, install


async def _enable(
    start_gateway: GatewayFactory,
    provider: str,
    fake: RunningFakeProvider,
    properties: dict[str, str] | None = None,
) -> tuple[Gateway, gateway_pb2.Installation, dict[str, Any]]:
    """Register ``provider``'s definition (pointed at the fake) and enable an installation; a
    send fixture's own ``properties`` (a variant's choice, docs/format.md "Variants") are added
    to install.json's; one given as null is left out (a property that choice does not need)."""
    gateway: Gateway = await start_gateway(sidecar=True, receipt_wait_s=0.2)
    install = _load(FIXTURES / provider / "install.json")
    auth = _definition(provider).get("WebhookAuth")
    merged = {**install["properties"], **(properties or {}), **property_overrides(auth)}
    install["properties"] = {name: value for name, value in merged.items() if value is not None}
    for name in _base_url_properties(provider):  # (ext) "$Server URL|base_url$/…": the fake
        install["properties"][name] = _point_at(install["properties"][name], fake.url)
    integration = await gateway.register(local_definition(provider, fake.url))
    installation = await gateway.enable(
        integration.id,
        org="org-1",
        numbers=install["numbers"],
        properties=install["properties"],
        region=install.get("region", ""),
    )
    return gateway, installation, install


def _base_url_properties(provider: str) -> set[str]:
    """The properties a request URL opens with as a whole base URL (docs/format.md, "Where
    values go"): their values carry the provider's origin, which the fake stands in for."""
    found = set()
    for request in _requests_of(_definition(provider)):
        opening = re.match(r"\$([^$|]+)\|base_url\$", request["request_url"])
        if opening:
            found.add(opening.group(1))
    return found


def _definition(provider: str) -> dict[str, Any]:
    return _load(INTEGRATIONS / f"{provider}.json")


def _script_token_endpoint(provider: str, fake: RunningFakeProvider) -> str | None:
    """For OAuth2 client credentials, the provider's token endpoint answers like any OAuth2
    server; its path, or None."""
    oauth = _definition(provider).get("OAuth2")
    if not (oauth and oauth.get("flow_type", {}).get("default") == "1"):
        return None
    token_path = urllib.parse.urlsplit(_point_at(oauth["token_endpoint"], fake.url)).path
    token = {"access_token": "test-access-token", "token_type": "Bearer", "expires_in": 3600}
    fake.state.script(token_path, Answer(json=token))
    return token_path


async def _settle_subscription(gateway: Gateway, installation: gateway_pb2.Installation) -> None:
    import asyncio

    # Bounded by time rather than by turns, and generously: a busy machine is slow.
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        got = await gateway.stub.GetInstallation(
            gateway_pb2.GetInstallationRequest(installation_id=installation.id)
        )
        if got.subscription.state != gateway_pb2.Subscription.PENDING:
            return
        await asyncio.sleep(0.02)


def _answer(spec: dict[str, Any]) -> Answer:
    return Answer(
        status=spec.get("status", 200),
        json=spec.get("json"),
        text=spec.get("text"),
        headers=tuple((spec.get("headers") or {}).items()),
    )


async def _send(gateway: Gateway, request: dict[str, Any]) -> gateway_pb2.SendReply:
    common = {
        "org_id": "org-1",
        "to": request["to"],
        "extension": request.get("extension", ""),
        "domain": request.get("domain", ""),
    }
    if request.get("kind", "sms") == "mms":
        file = gateway_pb2.SendFileRequest(
            media_url=request["media_url"],
            media_urls=request.get("media_urls", []),
            text=request.get("text", ""),
            media_type=request.get("media_type", ""),
            filename=request.get("filename", ""),
            **common,
        )
        setattr(file, "from", request["from"])
        return await gateway.stub.SendFile(file)
    message = gateway_pb2.SendMessageRequest(text=request["text"], **common)
    setattr(message, "from", request["from"])
    return await gateway.stub.SendMessage(message)


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(provider, path, id=f"{provider}/{path.stem}")
        for provider in PROVIDERS
        for path in sorted((FIXTURES / provider / kind).glob("*.json"))
    ]


@pytest.mark.parametrize(("provider", "fixture"), _cases("send"))
async def test_send_request_and_answer(
    provider: str, fixture: Path, start_gateway: GatewayFactory, provider_fake: RunningFakeProvider
) -> None:
    case = _load(fixture)
    gateway, installation, _ = await _install(
        start_gateway, provider, provider_fake, case.get("properties")
    )
    # (ext) several requests per send (docs/format.md, "Proving a definition"): a list of
    # answers, given in turn, and a list of expected requests, in order.
    answers = case.get("answer", {})
    provider_fake.state.script(
        "*", *(_answer(a) for a in (answers if isinstance(answers, list) else [answers]))
    )
    token = case.get("oauth2_token")
    if token is not None:  # OAuth2 client credentials: the token request comes first
        provider_fake.state.script(token["expect"]["path"], _answer(token["answer"]))
    wanted_error = case.get("expect_error")
    reply = None
    if wanted_error is None:
        reply = await _send(gateway, case["request"])
    else:  # a documented failure: the caller gets its code and reason (docs/format.md,
        # "response_rules")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _send(gateway, case["request"])
        _check_error(caught.value, wanted_error)
    requests = provider_fake.state.requests
    if token is not None:
        token_request, *requests = requests
        _check_request(token_request, token["expect"])
    expects = case["expect"] if isinstance(case["expect"], list) else [case["expect"]]
    assert len(requests) == len(expects), [(r.method, r.path) for r in requests]
    gateway_id = (
        reply.message_id if reply else _sent_value(expects[0].get("json"), requests[0].json)
    )
    for received, expected in zip(requests, expects, strict=True):
        # Values only known at run time are written in the fixtures as placeholders.
        expect = _resolve(
            expected,
            {"$webhook_url$": installation.webhook_url, "$gateway_id$": gateway_id or ""},
        )
        _check_request(received, expect)
    wanted = case.get("expect_reply", {})
    if reply is not None and "provider_message_id" in wanted:
        assert reply.provider_message_id == wanted["provider_message_id"]
    if reply is not None and "provider_message_ids" in wanted:
        assert list(reply.provider_message_ids) == wanted["provider_message_ids"]
    if wanted_error is not None and gateway_id:
        message = await gateway.stub.GetMessage(
            gateway_pb2.GetMessageRequest(message_id=gateway_id)
        )
        assert message.state == gateway_pb2.Message.FAILED
        assert wanted_error["reason"] in message.error


def _check_error(error: grpc.aio.AioRpcError, wanted: dict[str, Any]) -> None:
    """The failed send's gRPC code, ErrorInfo reason and metadata are the fixture's."""
    assert error.code().name == wanted["code"], error.details()
    info = rpc_details(error)["error_info"]
    assert info.reason == wanted["reason"]
    for key, value in wanted.get("metadata", {}).items():
        assert info.metadata[key] == value


def _sent_value(expect: Any, sent: Any, name: str = "$gateway_id$") -> str | None:
    """What the provider received where the fixture expects ``name`` (a failed send has no
    reply to read the gateway's message id from)."""
    if expect == name and isinstance(sent, str):
        return sent
    if isinstance(expect, dict) and isinstance(sent, dict):
        pairs = [(v, sent.get(k)) for k, v in expect.items()]
    elif isinstance(expect, list) and isinstance(sent, list):
        pairs = list(zip(expect, sent, strict=False))
    else:
        return None
    for inner, got in pairs:
        found = _sent_value(inner, got, name)
        if found:
            return found
    return None


def _check_request(received: Any, expect: dict[str, Any]) -> None:
    """The request the provider received is the one the documentation shows."""
    assert received.method == expect["method"]
    assert received.path == expect["path"]
    if "query" in expect:
        assert _multi(received.query) == _multi_expected(expect["query"])
    headers = {k.lower(): v for k, v in received.headers}
    for name, value in expect.get("headers", {}).items():
        if value == "Bearer $jwt$":  # a token signed per request: its shape, not its bytes
            assert re.fullmatch(r"Bearer [\w-]+\.[\w-]+\.[\w-]+", headers.get(name.lower(), ""))
        else:
            assert headers.get(name.lower()) == value, name
    if "json" in expect:
        assert received.json == expect["json"]
    if "body_text" in expect:  # the exact body (an XML document)
        assert received.body.decode("utf-8") == expect["body_text"]
    if "form" in expect:
        form = urllib.parse.parse_qsl(received.body.decode(), keep_blank_values=True)
        assert _multi(tuple(form)) == _multi_expected(expect["form"])
    if "multipart" in expect:
        parts = tuple((p.name or "", p.text) for p in received.parts or ())
        assert _multi(parts) == _multi_expected(expect["multipart"])


@pytest.mark.parametrize(("provider", "fixture"), _cases("subscribe"))
async def test_subscribe_requests(
    provider: str, fixture: Path, start_gateway: GatewayFactory, provider_fake: RunningFakeProvider
) -> None:
    """Enabling an installation makes exactly the documented requests that register its webhook
    URL (and disabling it, the ``unsubscribe`` steps when the fixture has them)."""
    case = _load(fixture)
    token_path = _script_token_endpoint(provider, provider_fake)
    _script_steps(provider_fake, case["steps"])
    gateway, installation, _ = await _enable(start_gateway, provider, provider_fake)
    await _settle_subscription(gateway, installation)
    got = await gateway.stub.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation.id)
    )
    assert got.subscription.state == gateway_pb2.Subscription.SUBSCRIBED, got.subscription.error
    _check_steps(provider_fake, case["steps"], installation, token_path)

    if "unsubscribe" in case:
        provider_fake.state.reset()
        token_path = _script_token_endpoint(provider, provider_fake)
        _script_steps(provider_fake, case["unsubscribe"])
        await gateway.stub.DisableIntegration(
            gateway_pb2.DisableIntegrationRequest(installation_id=installation.id)
        )
        _check_steps(provider_fake, case["unsubscribe"], installation, token_path)


def _script_steps(fake: RunningFakeProvider, steps: list[dict[str, Any]]) -> None:
    """Each step's answer, in order, for the path its request goes to."""
    answers: dict[str, list[Answer]] = {}
    for step in steps:
        answers.setdefault(step["expect"]["path"], []).append(_answer(step.get("answer", {})))
    for path, scripted in answers.items():
        fake.state.script(path, *scripted)


def _check_steps(
    fake: RunningFakeProvider,
    steps: list[dict[str, Any]],
    installation: gateway_pb2.Installation,
    token_path: str | None,
) -> None:
    received = [r for r in fake.state.requests if r.path != token_path]
    assert [(r.method, r.path) for r in received] == [
        (s["expect"]["method"], s["expect"]["path"]) for s in steps
    ]
    for request, step in zip(received, steps, strict=True):
        _check_request(
            request, _resolve(step["expect"], {"$webhook_url$": installation.webhook_url})
        )


def _resolve(tree: Any, values: dict[str, str]) -> Any:
    if isinstance(tree, dict):
        return {k: _resolve(v, values) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_resolve(v, values) for v in tree]
    if isinstance(tree, str):
        for name, value in values.items():
            tree = tree.replace(name, value)
    return tree


def _multi(pairs: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _multi_expected(expected: dict[str, Any]) -> dict[str, list[str]]:
    return {
        k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in expected.items()
    }


@pytest.mark.parametrize(("provider", "fixture"), _cases("webhooks"))
async def test_webhook_yields_the_documented_events(
    provider: str, fixture: Path, start_gateway: GatewayFactory, provider_fake: RunningFakeProvider
) -> None:
    case = _load(fixture)
    gateway, installation, install = await _install(start_gateway, provider, provider_fake)
    sent: gateway_pb2.SendReply | None = None
    if "sent_first" in case:
        first = case["sent_first"]
        answer = (
            _answer(first["answer"])  # the documented answer, where it is not JSON (XML)
            if "answer" in first
            else Answer(**_answer_with_id(provider, first["provider_message_id"]))
        )
        provider_fake.state.script("*", answer)  # the token endpoint keeps its own script
        numbers = list(install["numbers"])
        sent = await _send(
            gateway, {"from": numbers[0], "to": "+15557654321", "text": "sent first"}
        )
        assert sent.provider_message_id == case["sent_first"]["provider_message_id"]
    before = await gateway.stub.ListEvents(
        gateway_pb2.ListEventsRequest(page_size=1000, types=_ALL_TYPES)
    )

    # A provider that sends back our id (docs/format.md, "Receipts") has it in the fixture as
    # $gateway_id$: the id of the message sent first.
    ours = {"$gateway_id$": sent.message_id} if sent is not None else {}
    if "body" in case:
        body = json.dumps(_resolve(case["body"], ours)).encode()
    else:
        body = _resolve(case.get("body_text", ""), ours).encode()
    path = installation.webhook_url.split("127.0.0.1:0", 1)[1]
    query = _resolve(case.get("query", ""), ours)
    url = f"http://127.0.0.1:{gateway.server.http_port}{path}" + (f"?{query}" if query else "")
    public_url = installation.webhook_url + (f"?{query}" if query else "")
    content_type = case.get("content_type", "application/json")
    headers = {**case.get("headers", {})}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update(
        sign_webhook(
            _definition(provider).get("WebhookAuth"),
            install["properties"],
            method=case.get("method", "POST"),
            url=public_url,
            headers=headers,
            body=body,
        )
    )
    method = case.get("method", "POST")
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, yarl.URL(url, encoded=True), data=body, headers=headers) as answer,
    ):
        assert 200 <= answer.status < 300, await answer.text()
        if "expect_answer" in case:  # the answer the provider expects (docs/format.md, "Answers")
            wanted = case["expect_answer"]
            assert answer.status == wanted.get("status", 200)
            assert answer.headers.get("Content-Type") == wanted["content_type"]
            assert await answer.read() == wanted["body_text"].encode("utf-8")

    events = await _events_after(gateway, before, len(case["expect_events"]))
    assert len(events) == len(case["expect_events"]), [str(e) for e in events]
    for event, expected in zip(events, case["expect_events"], strict=True):
        _compare(event, expected, sent)


def _answer_with_id(provider: str, provider_id: str) -> dict[str, Any]:
    """A 2xx answer whose body carries ``provider_id`` where the definition's response_map
    captures ``$messageid$``."""
    doc = _definition(provider)
    response_map = doc["API"]["SendMessage"].get("response_map")
    if response_map == "$messageid$":
        return {"text": provider_id}
    body = _fill(response_map, provider_id)
    # What the definition's response_rules require is there too (docs/format.md,
    # "response_rules"): the first accepted value at each pointer that must be one_of.
    rules = doc["API"]["SendMessage"].get("response_rules", {})
    for condition in rules.get("require", []):
        if "pointer" in condition and "one_of" in condition:
            body = _put(body, condition["pointer"].split("/")[1:], condition["one_of"][0])
    return {"json": body}


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


async def _events_after(
    gateway: Gateway, before: gateway_pb2.ListEventsResponse, count: int
) -> list[gateway_pb2.Event]:
    import asyncio

    after = before.events[-1].cursor if before.events else 0
    events: list[gateway_pb2.Event] = []
    # Bounded by time rather than by turns, and generously: a busy machine is slow.
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        listed = await gateway.stub.ListEvents(
            gateway_pb2.ListEventsRequest(after_cursor=after, page_size=1000, types=_ALL_TYPES)
        )
        events = list(listed.events)
        if len(events) >= count:
            break
        await asyncio.sleep(0.05)  # a held receipt is released after receipt_wait
    return events


def _compare(
    event: gateway_pb2.Event, expected: dict[str, Any], sent: gateway_pb2.SendReply | None
) -> None:
    assert event.type == _EVENT_TYPES[expected["type"]]
    fields = {
        "from": getattr(event, "from"),
        "to": event.to,
        "text": event.text,
        "media_urls": list(event.media_urls),
        "provider_message_id": event.provider_message_id,
        "status": event.status,
        "error": event.error,
        # (ext) the model's kept captures (docs/format.md, "Built values, extra fields and …")
        "fields": dict(event.fields),
    }
    for name, value in expected.items():
        if name == "type":
            continue
        if name == "message_id":
            assert sent is not None and event.message_id == sent.message_id
            continue
        assert fields[name] == value, name
