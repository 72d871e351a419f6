"""(ext) A definition's ``Media`` (docs/format.md, "Media"): how it loads, the credentials a media
URL is fetched with and where they may go, the media types and caps, and what ``msgbridge check``
says about it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from client.cli import main
from server.engine import (
    BasicAuth,
    DefinitionError,
    HeaderAuth,
    MediaRules,
    RenderError,
    check_definition,
    content_type_allowed,
    credentials_follow_redirect,
    load_definition,
    media_caps,
    media_credentials,
    media_credentials_apply,
    media_id_of,
    media_needs_bearer_token,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = json.loads((ROOT / "integrations" / "template.json").read_text())
KEY = {"API key": "k3y"}
BEARER = (("Authorization", "Bearer k3y"),)


def _doc(media: Any = None, **top: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TEMPLATE)
    if media is not None:
        doc["Media"] = media
    doc.update(top)
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    return [f"{p.severity} {p}" for p in check_definition(doc)]


# -- loading ---------------------------------------------------------------------------------------


def test_without_media_no_credentials_and_the_gateways_caps_and_types() -> None:
    definition = load_definition(_doc())
    assert definition.media == MediaRules()
    assert definition.media == MediaRules(
        auth="none", hosts=None, max_item_bytes=None, max_message_bytes=None, content_types=None
    )
    assert media_credentials(definition, "https://api.example.com/media/1", KEY) == ()


def test_media_loads_with_hosts_and_types_in_lower_case() -> None:
    definition = load_definition(
        _doc(
            {
                "auth": "api",
                "hosts": ["API.Example.com", "*.CDN.example.com"],
                "max_item_bytes": 5242880,
                "max_message_bytes": 10485760,
                "content_types": ["image/*", "Video/MP4", "text/vcard"],
            }
        )
    )
    assert definition.media == MediaRules(
        auth="api",
        hosts=("api.example.com", "*.cdn.example.com"),
        max_item_bytes=5242880,
        max_message_bytes=10485760,
        content_types=("image/*", "video/mp4", "text/vcard"),
    )


@pytest.mark.parametrize(
    ("auth", "loaded"),
    [
        (
            {"type": "Basic", "username": "$User$", "password": "$API key$"},
            BasicAuth(username="$User$", password="$API key$"),
        ),
        (
            {"type": "Header", "headers": {"X-Media-Key": "$API key$"}},
            HeaderAuth(headers={"X-Media-Key": "$API key$"}),
        ),
    ],
)
def test_an_auth_of_its_own_loads_as_the_definitions_auth_does(auth: Any, loaded: Any) -> None:
    doc = _doc({"auth": auth})
    doc["properties"] = ["API key", {"name": "User", "secret": False}]
    media = load_definition(doc).media
    assert media.auth == loaded
    assert media.hosts is None


def test_a_variant_keeps_media_and_api_stands_for_the_variants_auth() -> None:
    doc = _doc({"auth": "api"})
    doc["properties"] = ["API key", {"name": "Login", "options": ["token", "basic", "open"]}]
    doc["variants"] = {
        "Login": {
            "basic": {
                "auth": {"type": "Basic", "token": None, "username": "u", "password": "$API key$"}
            },
            "open": {"auth": None},
        }
    }  # fmt: skip
    definition = load_definition(doc)
    url = "https://api.example.com/media/1"
    assert media_credentials(definition, url, KEY) == BEARER
    basic = definition.choose({"Login": "basic"})
    assert basic.media == definition.media
    assert media_credentials(basic, url, KEY) == (("Authorization", "Basic dTprM3k="),)
    assert media_credentials(definition.choose({"Login": "open"}), url, KEY) == ()


def test_a_variant_cannot_change_media() -> None:
    doc = _doc({"auth": "api"})
    doc["properties"] = ["API key", {"name": "Mode", "options": ["a", "b"]}]
    doc["variants"] = {"Mode": {"b": {"Media": {"auth": "none"}}}}
    assert _problems(doc) == [
        'error /variants/Mode/b/Media: unknown key "Media"; allowed here: "auth", "API", '
        '"Subscribe", "Unsubscribe", "number_format"'
    ]


# -- the schema ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        ({}, "/Media: Media must not be empty"),
        ([], "/Media: Media must be an object, not a list"),
        ({"auth": "basic"}, '/Media/auth: auth must be "none" or "api", not "basic"'),
        ({"auth": 1}, "/Media/auth: auth must be a string or an object, not the number 1"),
        ({"auth": {"type": "JWT", "algorithm": "HS256", "key": "$API key$"}}, "/Media/auth/type: "
         'type must be "Basic", "Bearer" or "Header", not "JWT"'),
        ({"auth": {"type": "Basic", "username": "$API key$"}}, "/Media/auth: auth is missing the "
         'required key "password"'),
        ({"auth": {"type": "Bearer", "token": "$API key$", "ttl_s": 5}}, "/Media/auth/ttl_s: "
         'unknown key "ttl_s"; allowed here: "type", "token"'),
        ({"auth": "api", "hosts": []}, "/Media/hosts: hosts must have at least 1 item"),
        ({"auth": "api", "hosts": "a.example"}, "/Media/hosts: hosts must be a list, not the "
         'string "a.example"'),
        ({"auth": "api", "hosts": ["a.example", "a.example"]}, "/Media/hosts: hosts must not hold "
         "the same item twice"),
        ({"max_item_bytes": 0}, "/Media/max_item_bytes: max_item_bytes must be at least 1"),
        ({"max_item_bytes": 104857601}, "/Media/max_item_bytes: max_item_bytes must be at most "
         "104857600"),
        ({"max_message_bytes": 1.5}, "/Media/max_message_bytes: max_message_bytes must be an "
         "integer, not the number 1.5"),
        ({"content_types": []}, "/Media/content_types: content_types must have at least 1 item"),
        ({"content_types": [""]}, "/Media/content_types/0: item 0 of content_types must not be "
         "empty"),
        ({"types": ["image/*"]}, '/Media/types: unknown key "types"; allowed here: "auth", '
         '"hosts", "max_item_bytes", "max_message_bytes", "content_types", "resolve"'),
    ],
)  # fmt: skip
def test_a_malformed_media_is_an_error_at_its_pointer(media: Any, expected: str) -> None:
    doc = _doc(media)
    assert _problems(doc) == [f"error {expected}"]
    with pytest.raises(DefinitionError):
        load_definition(doc)


# -- where the credentials go ----------------------------------------------------------------------

TWILIO_LIKE = {"auth": "api", "hosts": ["api.example.com", "*.media.example.com"]}


@pytest.mark.parametrize(
    ("url", "carries"),
    [
        ("https://api.example.com/2010-04-01/Accounts/AC1/Media/ME1", True),
        ("https://API.Example.COM/media/1", True),
        ("https://api.example.com./media/1", True),
        ("https://api.example.com:8443/media/1", True),
        ("https://eu.media.example.com/1", True),
        ("https://a.b.media.example.com/1", True),
        ("https://media.example.com/1", False),  # "*." is the hosts under the domain only
        ("https://evilmedia.example.com/1", False),
        ("https://api.example.com.evil.test/media/1", False),
        ("https://evil.test/api.example.com/media/1", False),
        ("https://evil.test/?u=https://api.example.com/", False),
        ("http://api.example.com/media/1", False),  # never over http to a listed host
        ("ftp://api.example.com/media/1", False),
        ("https://api.example.com@evil.test/media/1", False),
        ("https://user:pw@api.example.com/media/1", False),
        ("https://evil.test\\@api.example.com/media/1", False),
        ("https://api.example.com\t/media/1", False),
        ("https://[::1]/media/1", False),
        ("https://api.example.com:99999/media/1", False),
        ("//api.example.com/media/1", False),
        ("api.example.com/media/1", False),
        ("", False),
    ],
)
def test_credentials_go_only_to_the_listed_hosts_over_https(url: str, carries: bool) -> None:
    definition = load_definition(_doc(TWILIO_LIKE))
    assert media_credentials_apply(definition, url, KEY) is carries
    assert media_credentials(definition, url, KEY) == (BEARER if carries else ())


def test_without_hosts_credentials_go_to_the_origins_of_the_definitions_own_requests() -> None:
    doc = _doc({"auth": "api"})
    doc["API"]["SendFile"]["request_url"] = "https://files.example.com:8443/mms"
    doc["Subscribe"] = {
        "request_method": "POST",
        "request_url": "https://hooks.example.com/v1/hooks",
        "request_parameters": {"url": "$webhook_url$"},
    }
    definition = load_definition(doc)
    for url in (
        "https://api.example.com/media/1",
        "https://files.example.com:8443/media/1",
        "https://hooks.example.com/x",
    ):
        assert media_credentials(definition, url, KEY) == BEARER, url
    for url in (
        "https://files.example.com/media/1",  # another port: another origin
        "http://api.example.com/media/1",
        "https://cdn.api.example.com/media/1",
        "https://example.com/media/1",
    ):
        assert media_credentials(definition, url, KEY) == (), url


def test_a_placeholder_host_is_the_installations_and_http_only_where_its_requests_go() -> None:
    """The demo definition's requests go to http://$Server$: its media credentials go there over
    http too, as its requests' do (a local provider, a test's fake) — and nowhere else."""
    doc = json.loads((ROOT / "integrations" / "demo.json").read_text())
    doc["Media"] = {"auth": "api"}
    definition = load_definition(doc)
    values = {"Server": "127.0.0.1:8090", "API key": "demo-secret"}
    assert media_credentials(definition, "http://127.0.0.1:8090/media/1", values) == (
        ("Authorization", "Bearer demo-secret"),
    )
    assert media_credentials(definition, "http://127.0.0.1:8091/media/1", values) == ()
    assert media_credentials(definition, "https://127.0.0.1:8090/media/1", values) == ()
    assert media_credentials(definition, "http://localhost:8090/media/1", values) == ()
    # without the property no request URL has an origin: credentials go nowhere
    assert media_credentials(definition, "http://127.0.0.1:8090/media/1", {"API key": "s"}) == ()


# -- which credentials -----------------------------------------------------------------------------

URL = "https://api.example.com/media/1"


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        ({"type": "Basic", "username": "$API key$", "password": "x"},
         ("Authorization", "Basic azN5Ong=")),
        ({"type": "Bearer", "token": "$API key$"}, ("Authorization", "Bearer k3y")),
        ({"type": "Header", "headers": {"X-API-Key": "$API key$"}}, ("X-API-Key", "k3y")),
    ],
)  # fmt: skip
def test_api_renders_the_definitions_own_auth(auth: Any, headers: tuple[str, str]) -> None:
    definition = load_definition(_doc({"auth": "api"}, auth=auth))
    assert media_credentials(definition, URL, KEY) == (headers,)
    assert media_needs_bearer_token(definition) is False


def test_an_auth_of_its_own_is_rendered_with_the_installations_properties() -> None:
    doc = _doc(
        {
            "auth": {
                "type": "Header",
                "headers": {"X-Media-User": "$User$", "X-Media-Key": "media-$API key$"},
            },
            "hosts": ["files.example.net"],
        }
    )
    doc["properties"] = ["API key", {"name": "User", "secret": False}]
    definition = load_definition(doc)
    values = {"API key": "k3y", "User": "ann"}
    assert media_credentials(definition, "https://files.example.net/1", values) == (
        ("X-Media-User", "ann"),
        ("X-Media-Key", "media-k3y"),
    )
    # the hosts are the media's own, not the requests'
    assert media_credentials(definition, URL, values) == ()


def test_a_media_header_value_with_a_line_break_is_refused_at_its_pointer() -> None:
    doc = _doc({"auth": {"type": "Header", "headers": {"X-Key": "$API key$"}}})
    definition = load_definition(doc)
    with pytest.raises(RenderError) as caught:
        media_credentials(definition, URL, {"API key": "a\r\nX-Evil: 1"})
    assert caught.value.pointer == "/Media/auth/headers/X-Key"
    assert "a\r\n" not in str(caught.value)


def test_api_with_oauth2_carries_the_bearer_token_the_caller_obtained() -> None:
    doc = _doc({"auth": "api"})
    del doc["auth"]
    doc["properties"] = ["Client ID", "Client secret"]
    doc["OAuth2"] = {
        "client_id": "$Client ID$",
        "client_secret": "$Client secret$",
        "flow_type": {"default": "1"},
        "token_endpoint": "https://auth.example.com/token",
    }
    definition = load_definition(doc)
    assert media_needs_bearer_token(definition) is True
    assert media_credentials(definition, URL, {}, bearer_token="t0k") == (
        ("Authorization", "Bearer t0k"),
    )
    assert media_credentials(definition, URL, {}) == ()  # no token obtained: none sent
    # the token endpoint is not where requests go: no media credentials there
    assert media_credentials(definition, "https://auth.example.com/m", {}, bearer_token="t") == ()


def test_api_with_jwt_carries_the_signed_token_the_caller_obtained() -> None:
    jwt = {"type": "JWT", "algorithm": "HS256", "key": "$API key$", "claims": {}}
    definition = load_definition(_doc({"auth": "api"}, auth=jwt))
    assert media_needs_bearer_token(definition) is True
    assert media_credentials(definition, URL, KEY, bearer_token="j.w.t") == (
        ("Authorization", "Bearer j.w.t"),
    )


def test_none_and_an_auth_of_its_own_need_no_bearer_token() -> None:
    assert media_needs_bearer_token(load_definition(_doc())) is False
    own = {"auth": {"type": "Bearer", "token": "$API key$"}}
    definition = load_definition(_doc(own))
    assert media_needs_bearer_token(definition) is False
    assert media_credentials(definition, URL, KEY, bearer_token="ignored") == BEARER


def test_api_without_any_auth_sends_nothing() -> None:
    doc = _doc({"auth": "api"})
    del doc["auth"]
    doc["properties"] = []
    definition = load_definition(doc)
    assert media_credentials_apply(definition, URL, {}) is False
    assert media_credentials(definition, URL, {}) == ()


@pytest.mark.parametrize(
    ("location", "follows"),
    [
        ("https://api.example.com/other", True),
        ("https://API.example.com:443/other", True),
        ("https://cdn.example.com/signed?x=1", False),  # Twilio's media redirect to a CDN
        ("https://api.example.com:8443/other", False),
        ("http://api.example.com/other", False),
        ("https://api.example.com@cdn.example.com/", False),
        ("/relative", False),
    ],
)
def test_a_redirect_carries_the_credentials_only_to_the_same_origin(
    location: str, follows: bool
) -> None:
    assert credentials_follow_redirect("https://api.example.com/media/1", location) is follows


# -- media types and caps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "allowed"),
    [
        ("image/png", True),
        ("IMAGE/JPEG", True),
        ("video/mp4", True),
        ("video/mp4; codecs=avc1", True),
        ("video/quicktime", False),
        ("text/vcard", True),
        ("text/x-vcard", False),
        ("text/html", False),
        ("application/pdf", False),
        ("image", False),
        ("image/", False),
        ("*/*", False),
        ("image/*", False),  # a pattern is not a type
        ("", False),
    ],
)
def test_content_types_match_exactly_or_by_their_type(content_type: str, allowed: bool) -> None:
    patterns = ("image/*", "Video/MP4", "text/vcard")
    assert content_type_allowed(content_type, patterns) is allowed


def test_the_lower_cap_applies() -> None:
    rules = MediaRules(max_item_bytes=5_000_000, max_message_bytes=20_000_000)
    assert media_caps(rules, max_item_bytes=10_000_000, max_message_bytes=10_000_000) == (
        5_000_000,
        10_000_000,
    )
    assert media_caps(MediaRules(), max_item_bytes=7, max_message_bytes=9) == (7, 9)


# -- msgbridge check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ("https://api.example.com", '"https://api.example.com" is not a hosts entry: write a '
         "host name alone (api.twilio.com), with no scheme, port or path: credentials go over "
         "https only"),
        ("api.example.com:443", '"api.example.com:443" is not a hosts entry: write a host name '
         "alone"),
        ("api.example.com/media", '"api.example.com/media" is not a hosts entry: write a host '
         "name alone"),
        ("api.*.example.com", '"api.*.example.com" is not a hosts entry: write a host name '
         '(api.twilio.com) or "*." and a domain (*.twilio.com); a "*" only opens it'),
        ("*", '"*" is not a hosts entry: write a host name'),
        ("a..example.com", '"a..example.com" is not a hosts entry: write a host name'),
        ("bücher.example", '"bücher.example" is not a hosts entry: write a host name'),
        ("*.com", '"*.com" is not a hosts entry: it takes every host of a top-level domain: '
         "name a domain of its own"),
        ("*.192.0.2.1", '"*.192.0.2.1" is not a hosts entry: "*." goes with a domain name, not an '
         "IP address"),
    ],
)  # fmt: skip
def test_a_malformed_host_is_an_error(hosts: str, expected: str) -> None:
    problems = _problems(_doc({"auth": "api", "hosts": ["api.example.com", hosts]}))
    assert len(problems) == 1
    assert problems[0].startswith(f"error /Media/hosts/1: {expected}")


@pytest.mark.parametrize(
    "hosts", ["api.example.com", "*.example.com", "*.co.uk", "xn--bcher-kva.example", "192.0.2.1"]
)
def test_well_formed_hosts_are_clean(hosts: str) -> None:
    assert _problems(_doc({"auth": "api", "hosts": [hosts]})) == []


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("image", "write type/subtype (video/mp4) or type/* (image/*)"),
        ("image/", "write type/subtype"),
        ("*/*", "*/* would take any file: name a type (image/*) or a type and subtype (video/mp4)"),
        ("*/png", "*/* would take any file"),
        ("image/png; q=1", "write a media type without parameters"),
        ("image/p*", "write type/subtype"),
        ("image /png", "write type/subtype"),
    ],
)
def test_a_content_type_that_is_not_type_and_subtype_is_an_error(
    pattern: str, expected: str
) -> None:
    problems = _problems(_doc({"content_types": ["image/*", pattern]}))
    assert len(problems) == 1
    assert problems[0].startswith(
        f'error /Media/content_types/1: "{pattern}" is not a content_types entry: {expected}'
    )


def test_a_message_cap_below_the_item_cap_is_an_error() -> None:
    doc = _doc({"max_item_bytes": 5242880, "max_message_bytes": 1048576})
    assert _problems(doc) == [
        "error /Media/max_message_bytes: a message's media may be 1048576 bytes in all, less "
        "than one file's max_item_bytes (5242880): one file is part of its message, so "
        "max_message_bytes must be at least max_item_bytes"
    ]
    assert _problems(_doc({"max_item_bytes": 5242880, "max_message_bytes": 5242880})) == []
    assert _problems(_doc({"max_message_bytes": 1})) == []


def test_api_without_the_definitions_auth_is_a_warning() -> None:
    doc = _doc({"auth": "api"})
    del doc["auth"]
    doc["properties"] = []
    assert _problems(doc) == [
        'warning /Media/auth: "api" fetches media with the credentials of the definition\'s '
        "requests, but it has neither auth nor OAuth2: media is fetched without credentials"
    ]
    assert load_definition(doc).media.auth == "api"


def test_hosts_without_credentials_is_a_warning() -> None:
    expected = [
        "warning /Media/hosts: hosts says where media credentials may go, but auth gives none "
        '("none", the default): give auth, or leave hosts out'
    ]
    assert _problems(_doc({"hosts": ["api.example.com"]})) == expected
    assert _problems(_doc({"auth": "none", "hosts": ["api.example.com"]})) == expected


def test_an_auth_of_its_own_names_properties_only() -> None:
    doc = _doc({"auth": {"type": "Basic", "username": "$Usr$", "password": "$to$"}})
    doc["properties"] = ["API key", {"name": "User", "secret": False}]
    assert _problems(doc) == [
        "error /Media/auth/password: $to$ is not available in Media auth; it can be used in "
        "SendMessage, SendFile, SendTyping, MarkRead, LookupContact and webhook models",
        "error /Media/auth/username: unknown placeholder $Usr$: only properties can be used in "
        'Media auth, and there is no "Usr" (did you mean $User$?)',
        'warning /properties/1/name: property "User" is declared but never used (no $User$ in '
        "the file)",
    ]


def test_a_property_used_only_by_media_is_used() -> None:
    doc = _doc({"auth": {"type": "Bearer", "token": "$Media token$"}})
    doc["properties"] = ["API key", "Media token"]
    assert _problems(doc) == []


def test_msgbridge_check_prints_the_pointer_and_refuses_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(_doc({"auth": "api", "content_types": ["*/*"]})))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f'{path}:/Media/content_types/0: "*/*" is not a content_types entry' in out


# -- the shipped providers -------------------------------------------------------------------------

# The shipped definitions whose `Media` sends credentials (a `Media` may also only cap sizes
# and types: integrations/messenger.json, instagram.json)
WITH_MEDIA = sorted(
    p
    for p in (ROOT / "integrations").glob("*.json")
    if p.name not in {"schema.json", "template.json", "demo.json"}
    and json.loads(p.read_text()).get("Media", {}).get("auth", "none") != "none"
)


def test_twilio_fetches_its_media_with_the_account_credentials_from_its_api_host_only() -> None:
    definition = load_definition((ROOT / "integrations" / "twilio.json").read_bytes())
    values = {"Account SID": "AC1", "Auth Token": "t"}
    media = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    basic = (("Authorization", "Basic QUMxOnQ="),)
    assert media_credentials(definition, media, values) == basic
    # the CDN it redirects to, and any other host a forged webhook names, get none
    assert media_credentials(definition, "https://mms.twiliocdn.com/AC1/abc", values) == ()
    assert not credentials_follow_redirect(media, "https://mms.twiliocdn.com/AC1/abc")
    assert media_credentials(definition, "https://evil.test/Media/ME1", values) == ()
    # a Messaging Service installation keeps it
    service = definition.choose({"Send from": "messaging_service"})
    assert media_credentials(service, media, values) == basic


def test_bandwidth_fetches_its_media_with_the_oauth2_token() -> None:
    definition = load_definition((ROOT / "integrations" / "bandwidth.json").read_bytes())
    media = "https://messaging.bandwidth.com/api/v2/users/9900000/media/1476/0/bw.png"
    assert media_needs_bearer_token(definition) is True
    assert media_credentials(definition, media, {"Account ID": "9900000"}, bearer_token="t") == (
        ("Authorization", "Bearer t"),
    )
    assert media_credentials(definition, "https://evil.test/media/1", {}, bearer_token="t") == ()


@pytest.mark.parametrize("path", WITH_MEDIA, ids=lambda p: p.stem)
def test_shipped_media_names_its_source(path: Path) -> None:
    """docs/format.md, "Media": credentials only where the provider's documentation says media
    needs them — or (ext) files found by id ("Media given as an id") —, and the page named in
    the case set's sources.md."""
    media = load_definition(path.read_bytes()).media
    assert media.auth != "none" or media.resolve is not None
    sources = ROOT / "tests" / "fixtures" / "providers" / path.stem / "sources.md"
    text = sources.read_text()
    assert "`Media`" in text
    assert "https://" in text.split("`Media`", 1)[1]


def test_twilio_and_bandwidth_declare_media() -> None:
    assert {p.stem for p in WITH_MEDIA} >= {"twilio", "bandwidth"}


def test_vonage_fetches_secured_media_with_the_applications_jwt() -> None:
    definition = load_definition((ROOT / "integrations" / "vonage.json").read_bytes())
    media = "https://api-us.nexmo.com/v3/media/1b456509-974c-458b-aafa-45fc48a4d976"
    assert media_needs_bearer_token(definition) is True
    assert media_credentials(definition, media, {}, bearer_token="j.w.t") == (
        ("Authorization", "Bearer j.w.t"),
    )
    assert media_credentials(definition, "https://nexmo.com.evil.test/v3/media/1", {}) == ()


#: (ext) Those whose media needs credentials (a file found by id may carry its own, in its URL).
WITH_CREDENTIALS = [p for p in WITH_MEDIA if load_definition(p.read_bytes()).media.auth != "none"]


@pytest.mark.parametrize("path", WITH_CREDENTIALS, ids=lambda p: p.stem)
def test_the_media_of_a_providers_own_cases_gets_its_credentials(path: Path) -> None:
    """Each inbound media URL of the provider's cases (taken from its documentation) is on a host
    its ``Media`` sends credentials to: the hosts fit where the provider serves media. A case whose
    media another party serves (LINE's ``external`` content) says so with ``"media_elsewhere":
    true``, and its URLs must get none."""
    definition = load_definition(path.read_bytes())
    cases = ROOT / "tests" / "fixtures" / "providers" / path.stem
    values = json.loads((cases / "install.json").read_text())["properties"]
    webhooks = [json.loads(c.read_text()) for c in sorted((cases / "webhooks").glob("*.json"))]
    urls: list[str] = []
    elsewhere: list[str] = []
    for case in webhooks:
        found = [u for e in case.get("expect_events", ()) for u in e.get("media_urls", ())]
        (elsewhere if case.get("media_elsewhere") else urls).extend(found)
    for url in elsewhere:
        assert not media_credentials_apply(definition, url, values), url
    assert urls
    # (ext) a file given as an id is found by the definition's resolve, not fetched as named
    fetched = [url for url in urls if media_id_of(url) is None]
    assert fetched or definition.media.resolve is not None
    for url in fetched:
        assert media_credentials_apply(definition, url, values), url
