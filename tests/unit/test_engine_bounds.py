"""Hostile webhooks, provider answers and definitions at their bounds cost linear time.

Each large case here took seconds to hours before the matching fix; now each takes well under a
second. The work runs in a child process (:mod:`_guard`) with a generous timeout, so a regression
fails the test instead of hanging the run; no test measures a tight wall-clock time.
"""

from __future__ import annotations

import json

from _guard import run_guarded
from _webhook_models import definition, model

from server.engine import WebhookRequest, match_webhook

MESSAGE = {"method": "$event_key$", "params": {"from": "$from$", "to": "$to$", "text": "$text$"}}


def test_only_the_first_hundred_unmatched_payloads_of_a_request_are_explained() -> None:
    # Explaining walks every model's whole pattern: a batch of 300,000 empty objects took 24 s
    # to explain against a 12-model definition. The count of explanations is what is bounded.
    defn = definition(model("message", MESSAGE), model("dlr", {"id": "$messageid$"}, index=1))
    body = json.dumps([{"method": "message", "params": {}}] * 250).encode()
    result = match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
    assert result.events == ()
    assert [u.payload_pointer for u in result.unmatched] == [f"/{i}" for i in range(250)]
    explained = [u for u in result.unmatched if u.near_misses]
    assert explained == list(result.unmatched[:100])
    assert "/params/from: key missing" in explained[-1].reason
    for rest in result.unmatched[100:]:
        assert rest.near_misses == ()
        assert rest.reason.startswith("no webhook model matches this payload (the first 100")


def test_a_batch_at_the_body_limits_against_a_real_definition_is_matched_in_linear_time() -> None:
    # As large as a webhook body may be: 1 MB and, below that, the parser's number of values.
    out = run_guarded(
        """
        from server.engine import WebhookRequest, load_definition, match_webhook
        from server.engine._parse import MAX_JSON_VALUES
        with open("integrations/vonage.json", "rb") as file:
            defn = load_definition(file.read())
        elements = ((b"{}", 1), (b'{"type": "text", "message": {}}', 3), (b"[[[[[[[[]]]]]]]]", 8))
        for element, values in elements:
            count = min(1_000_000 // (len(element) + 1), (MAX_JSON_VALUES - 1) // values)
            body = b"[" + b",".join([element] * count) + b"]"
            request = WebhookRequest(method="POST", content_type="application/json", body=body)
            unmatched = match_webhook(defn, request).unmatched
            print(len(unmatched) > 10_000, sum(bool(u.near_misses) for u in unmatched))
        """,
        timeout=60,
    )
    assert out.split() == ["True", "100"] * 3


def test_a_definition_at_its_bounds_matches_a_hostile_body_in_linear_time() -> None:
    # 32 "*" keys (the bound) over an object of 99,000 keys (the parser takes at most 100,000
    # values), and a long mixed string over a long value that nearly fits: each star scans the
    # object once, each literal is found once.
    out = run_guarded(
        """
        import json
        from server.engine import WebhookRequest, load_definition, match_webhook
        with open("tests/fixtures/definitions/seed/complete_example.json") as file:
            doc = json.load(file)
        params = doc["Webhook"][1]["request_parameters"]["params"]
        params.update({f"Media{i}*": "$url$" for i in range(32)})
        params["text"] = "$text$-" * 300 + "!"
        defn = load_definition(doc)
        payload = {f"Media{i}x": "u" for i in range(99_000)}
        payload.update({"from": "1", "to": "2", "url": "u", "text": "-" * 200_000})
        body = json.dumps({"method": "file", "params": payload}).encode()
        result = match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
        print(len(result.events), len(result.unmatched))
        """
    )
    assert out.split() == ["0", "1"]


def test_long_headers_fields_and_answers_near_a_mixed_string_cost_linear_time() -> None:
    # Values made of a mixed string's literals, so that every placeholder could take many
    # lengths: the shape that made the regex these strings once compiled to backtrack.
    out = run_guarded(
        """
        from urllib.parse import urlencode
        from _webhook_models import definition, model
        from server.engine import WebhookRequest, map_response, match_webhook
        mixed = "$status$-$error$-$messageid$-$text$!"
        defn = definition(
            model("d", {"s": mixed}, event_type="messageDelivered", headers={"X-S": mixed}),
        )
        long = "-" * 300_000
        headers = tuple(("X-S", long) for _ in range(10)) + (("x-s", long + "!"),)
        body = urlencode([("s", long), ("s", long + "!")]).encode()
        form = "application/x-www-form-urlencoded"
        request = WebhookRequest(method="POST", content_type=form, body=body, headers=headers)
        result = match_webhook(defn, request)
        print(len(result.events), len(result.unmatched))
        answer = map_response(mixed, long.encode(), "text/plain")
        print(answer.accepted)
        """
    )
    assert out.split() == ["0", "1", "False"]


def test_a_long_absent_pointer_costs_its_length_once_not_once_per_payload() -> None:
    # The pointer was split for every payload: 600 KB over a batch of 20,000 took 35 s.
    out = run_guarded(
        """
        import json
        from _webhook_models import definition, model
        from server.engine import WebhookRequest, match_webhook
        absent = ("/" + "a/" * 300_000, "/id/" + "~0" * 300_000)
        defn = definition(
            model("d", {"id": "$messageid$"}, event_type="messageDelivered", absent=absent)
        )
        body = json.dumps([{"id": "x", "a": {"a": {}}}] * 20_000).encode()
        result = match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
        print(len(result.events), len(result.unmatched))
        """
    )
    assert out.split() == ["20000", "0"]


def test_a_header_repeated_thousands_of_times_is_joined_in_linear_time() -> None:
    out = run_guarded(
        """
        from _webhook_models import definition, model
        from server.engine import WebhookRequest, match_webhook
        receipt = {"id": "$messageid$"}
        defn = definition(
            model("d", receipt, event_type="messageDelivered", headers={"X-R": "$status$"})
        )
        headers = tuple(("x-r" if i % 2 else "X-R", "v" * 1_000) for i in range(100_000))
        body = b'{"id": "1"}'
        request = WebhookRequest(method="POST", content_type=None, body=body, headers=headers)
        (event,) = match_webhook(defn, request).events
        print(len(event.status))
        """
    )
    assert out.split() == [str(100_000 * 1_002 - 2)]


def test_a_definition_at_every_bound_loads_renders_and_matches_in_linear_time() -> None:
    # 100 models, 100 properties, a template nested 60 levels deep with a literal list of
    # 100,000 items: the largest definition the loader accepts costs milliseconds per use.
    out = run_guarded(
        """
        import json
        from server.engine import WebhookRequest, load_definition, match_webhook, render_request
        with open("tests/fixtures/definitions/seed/complete_example.json") as file:
            doc = json.load(file)
        message = doc["Webhook"][2]
        doc["Webhook"] = [dict(message, event_key=f"m{i}") for i in range(100)]
        doc["properties"] = ["API key"] + [f"p{i}" for i in range(99)]
        deep = "$content$"
        for _ in range(60):
            deep = {"d": deep}
        doc["API"]["SendMessage"]["request_parameters"] = {"deep": deep, "l": list(range(100_000))}
        defn = load_definition(json.dumps(doc).encode())
        values = {"content": "x" * 100_000, "to": "1", "from": "2", "API key": "k"}
        rendered = render_request(defn, defn.send_message, values)
        params = {"from": "1", "to": "2", "content": "x"}
        batch = [{"method": f"m{i}", "params": params} for i in range(120)]  # 20 match no model
        body = json.dumps(batch * 84).encode()
        result = match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
        print(len(defn.webhooks), len(rendered.body or b""), len(result.events))
        print(len(result.unmatched), sum(bool(u.near_misses) for u in result.unmatched))
        """
    )
    models, size, events, unmatched, explained = map(int, out.split())
    assert (models, events, unmatched, explained) == (100, 8_400, 1_680, 100)
    assert size > 600_000  # the list and the value, each once


def test_text_encodings_of_large_values_cost_linear_time() -> None:
    # docs/format.md, "Text encodings": detection, segments, every filter and every decoding
    # take time linear in the value; a hostile value gets a reason, not a stall.
    out = run_guarded(
        """
        import json
        from server.engine import (
            WebhookRequest, load_definition, match_webhook, render_request, segment_count,
            text_encoding,
        )
        from server.engine._codecs import ENCODINGS, decode_value, encode_value
        text = "€Ж👍a" * 50_000  # 200,000 characters
        print(text_encoding(text), segment_count(text))
        for name in ENCODINGS:
            if not name.startswith(("gsm7", "latin1")):
                assert decode_value(name, encode_value(name, text)) == text
        gsm = "€[a" * 60_000
        for name in ("gsm7_hex", "gsm7_packed_hex", "gsm7_packed_base64"):
            assert decode_value(name, encode_value(name, gsm)) == gsm
        for name, hostile in (
            ("ucs2_percent", "%" * 200_000),
            ("ucs2_hex", "0" * 199_999),
            ("base64", "=" * 200_001),
            ("gsm7_hex", "1B" * 100_000),
        ):
            try:
                decode_value(name, hostile)
            except ValueError as e:
                print(name, "refused:", str(e)[:30])
        with open("tests/fixtures/definitions/seed/complete_example.json") as file:
            doc = json.load(file)
        doc["API"]["SendMessage"]["request_parameters"] = {
            "t": "$content|ucs2_percent$",
            "k": {"$switch": "$encoding$", "cases": {"GSM-7": "0", "UCS-2": "8"}},
        }
        doc["Webhook"][2]["decode"] = {"content": "ucs2_hex"}
        defn = load_definition(json.dumps(doc).encode())
        rendered = render_request(defn, defn.send_message, {"content": text, "to": "1"})
        print(len(rendered.body or b""))
        params = {"from": "1", "to": "2", "content": "0041" * 100_000}
        message = {"method": "message", "params": params}
        body = json.dumps(message).encode()
        result = match_webhook(defn, WebhookRequest(method="POST", content_type=None, body=body))
        print(len(result.events[0].text or ""))
        """
    )
    lines = out.splitlines()
    assert lines[0] == "UCS-2 3750"  # 250,000 UTF-16 units in parts of 67, no emoji split
    assert [line.split(" refused")[0] for line in lines[1:5]] == [
        "ucs2_percent",
        "ucs2_hex",
        "base64",
        "gsm7_hex",
    ]
    assert int(lines[5]) > 1_200_000  # the text percent-encoded as UTF-16BE, once
    assert lines[6] == "100000"
