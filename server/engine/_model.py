"""The typed, immutable form of a loaded integration definition.

Template and pattern trees (``request_parameters``, ``response_map``, webhook patterns, JWT claims)
are kept as frozen JSON: objects become read-only mappings, arrays become tuples. Everything here is
produced by :func:`server.engine.load_definition`; nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args

from ._errors import Problem

__all__ = [
    "AddressKind",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "Definition",
    "EventType",
    "ForEach",
    "Frozen",
    "Handshake",
    "HandshakeDigest",
    "HeaderAuth",
    "JwtAuth",
    "MediaAuth",
    "MediaResolve",
    "MediaRules",
    "NumberFormat",
    "OAuth2Config",
    "Property",
    "Rate",
    "RequestTemplate",
    "ResponseCondition",
    "ResponseError",
    "ResponseRules",
    "Split",
    "ThroughputDefaults",
    "TokenAuth",
    "WebhookAnswer",
    "WebhookAuth",
    "WebhookModel",
    "freeze",
    "thaw",
]

Frozen: TypeAlias = "bool | int | float | str | tuple[Frozen, ...] | Mapping[str, Frozen] | None"
NumberFormat = Literal["as_given", "e164", "e164_digits", "national"]
#: (ext) The kind of address a definition's ``from``, ``to`` and numbers are (docs/format.md,
#: "Addresses"): phone numbers, normalised as "Numbers" says, or a platform's ids or user names,
#: kept verbatim.
AddressKind = Literal["phone", "id", "username"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def freeze(value: Any) -> Frozen:
    """Deep-copy parsed JSON into its frozen form (dict → read-only mapping, list → tuple)."""
    if isinstance(value, dict):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"not JSON: {type(value).__name__}")


def thaw(value: Frozen) -> Any:
    """The plain JSON (dicts and lists) of a frozen tree."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class EventType(enum.Enum):
    """What a webhook model produces; values are the format's own names (docs/format.md,
    "Webhook models")."""

    MESSAGE = "message"
    MMS = "mms"
    MESSAGE_DELIVERED = "messageDelivered"
    MESSAGE_FAILED = "messageFailed"
    MESSAGE_SENT = "messageSent"
    # --- more event types (docs/format.md, "More event types") ---
    OPTED_OUT = "optedOut"
    OPTED_IN = "optedIn"
    MESSAGE_READ = "messageRead"
    MESSAGE_STATUS = "messageStatus"
    # --- (ext) conversation signals (docs/format.md, "Conversation signals"): about a
    # conversation, routed like an inbound message by ``to``
    TYPING = "typing"
    CONVERSATION_STARTED = "conversationStarted"
    MESSAGE_DELETED = "messageDeleted"

    @property
    def is_delivery(self) -> bool:
        """A receipt: reports on a message we sent, routed by its provider message id."""
        return self in (
            EventType.MESSAGE_DELIVERED,
            EventType.MESSAGE_FAILED,
            EventType.MESSAGE_SENT,
            EventType.MESSAGE_READ,
            EventType.MESSAGE_STATUS,
        )

    @property
    def is_consent(self) -> bool:
        """An opt-out or opt-in: about a number, routed like an inbound message by ``to``."""
        return self in (EventType.OPTED_OUT, EventType.OPTED_IN)


@dataclass(frozen=True, kw_only=True, slots=True)
class Property:
    """A field the admin fills in. The seed's plain-string form is secret and required."""

    name: str
    secret: bool = True
    required: bool = True
    description: str | None = None
    default: str | None = None
    # (ext) a choice: the values allowed, its default the first unless ``default`` names another
    # (docs/format.md, "Variants")
    options: tuple[str, ...] = ()
    # (ext) required only for some choices: choice property -> the options that make this one
    # required (docs/format.md, "Variants": properties some choices need)
    required_when: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class BasicAuth:
    username: str  # template
    password: str  # template


@dataclass(frozen=True, kw_only=True, slots=True)
class BearerAuth:
    token: str  # template


@dataclass(frozen=True, kw_only=True, slots=True)
class HeaderAuth:
    """(ext) arbitrary auth headers, e.g. ``{"X-API-Key": "$API key$"}``."""

    headers: Mapping[str, str]  # name → template


@dataclass(frozen=True, kw_only=True, slots=True)
class JwtAuth:
    """(ext) a freshly signed token per request; signing needs a clock, so the caller does it."""

    algorithm: Literal["RS256", "HS256"]
    key: str  # template
    claims: Frozen  # template tree
    ttl_s: int = 900


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenAuth:
    """(ext) a token obtained with a request of its own and renewed before it expires
    (docs/format.md, "Tokens from a request"); obtaining it needs I/O, so the caller does it.

    ``request`` is the token request (its ``response_map`` captures ``$token$`` and, optionally,
    ``$expires_in$`` in seconds); ``ttl_s`` is the token's lifetime when the answer gives none
    (None: used until the provider answers 401); ``headers`` and ``query`` are where each call
    carries it: templates of properties and ``$token$``.
    """

    request: RequestTemplate
    ttl_s: int | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    query: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


Auth: TypeAlias = BasicAuth | BearerAuth | HeaderAuth | JwtAuth | TokenAuth


@dataclass(frozen=True, kw_only=True, slots=True)
class OAuth2Config:
    """The seed's ``OAuth2`` object; flow_type "0": authorization code, "1": client credentials."""

    client_id: str  # template
    client_secret: str  # template
    flow_type: Literal["0", "1"]
    authorization_endpoint: str | None
    authorization_parameters: str  # a query string appended to the authorization URL
    token_endpoint: str
    token_content_type: str  # how the token request body is encoded
    request_auth: str = "Bearer"


# -- response_rules (docs/format.md, "response_rules") ---------------------------------------------

#: The outcomes an ``errors`` entry may name; server/core/_provider_failures.py maps each to its
#: gRPC code and reason.
ResponseOutcomeName = Literal[
    "rejected",
    "invalid_number",
    "opted_out",
    "blocked",
    "outside_window",
    "throttled",
    "unavailable",
]
RESPONSE_OUTCOMES: tuple[str, ...] = get_args(ResponseOutcomeName)
ConditionTest = Literal["one_of", "not", "present", "absent"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseCondition:
    """(ext) One test of a provider's answer: the value at ``pointer`` (a JSON Pointer into the
    answer) or the response_map's capture ``capture`` is one of / none of ``values``, present or
    absent."""

    pointer: str | None
    capture: str | None
    test: ConditionTest
    values: tuple[bool | int | float | str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseError:
    """(ext) One ``errors`` entry: an answer with one of ``status`` (any, when empty) on which
    every condition of ``when`` holds fails the send as ``outcome``."""

    status: tuple[int, ...]
    when: tuple[ResponseCondition, ...]
    outcome: ResponseOutcomeName
    # (ext) a JSON Pointer to the seconds to wait, in the answer (a throttled or unavailable
    # outcome's; docs/format.md, "response_rules")
    retry_after: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseRules:
    """(ext) What a send's answer must say, beyond a 2xx and the response_map's literals."""

    require: tuple[ResponseCondition, ...] = ()
    errors: tuple[ResponseError, ...] = ()


ForEach = Literal["part", "media", "once"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Split:
    """(ext) How a send's text is cut into parts: at most ``max_length`` characters or at most
    ``max_segments`` SMS segments each; exactly one is set (docs/format.md, "Several requests
    per send")."""

    max_length: int | None = None
    max_segments: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FindRule:
    """(ext) A search in a list of a Subscribe or Unsubscribe answer (docs/format.md, "Look up
    before create"): the first element of the list at ``in_`` whose every ``where`` pointer holds
    the text of its template gives the ``capture`` names the values at their pointers."""

    in_: str  # JSON Pointer of the list in the answer; "" is the answer itself
    where: tuple[tuple[str, str], ...]  # (pointer in an element, template)
    capture: tuple[tuple[str, str], ...]  # (name, pointer in the element)


@dataclass(frozen=True, kw_only=True, slots=True)
class StepCondition:
    """(ext) ``only_if``: the step is made only when ``name`` has a value (``present``) or has
    none (``absent``)."""

    name: str
    present: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestTemplate:
    """A request the gateway makes: SendMessage, SendFile, (ext) SendTyping, MarkRead, Subscribe
    or Unsubscribe (docs/format.md, "Requests")."""

    pointer: str  # where it stands in the file, e.g. "/API/SendMessage" or "/Subscribe/1"
    method: HttpMethod
    url: str  # template
    content_type: str
    parameters: Frozen  # template tree; None when absent
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    response_map: Frozen = None  # pattern tree; None when absent
    response_rules: ResponseRules | None = None  # (ext) sends only; None when absent
    # (ext) docs/format.md, "Requests": a template object always sent as query parameters, and
    # where request_parameters go ("query" or "body"; None: the query for GET and DELETE)
    query: Frozen = None
    parameters_in: str | None = None
    omit_empty: bool = False  # (ext) request_omit_empty: an object emptied of keys is left out
    # (ext) Subscribe and Unsubscribe only (docs/format.md, "Look up before create"): elements to
    # find in the answer's lists
    find: tuple[FindRule, ...] = ()
    # (ext) a value the step is made only with or without: a Subscribe or Unsubscribe step, or a
    # send's follow-up request ("Look up before create", "Several requests per send")
    only_if: StepCondition | None = None
    # (ext) docs/format.md, "Several requests per send" (sends only): how the message's text is
    # cut into parts, what each request carries ("part", "media" or "once"; None: "part" with a
    # split, else "once") and the follow-up request.
    split: Split | None = None
    for_each: ForEach | None = None
    then: RequestTemplate | None = None
    # (ext) docs/format.md, "Requests" (sends only): the provider recognises a repeat of this
    # request by the $gateway_id$ it carries and never sends it twice, so a request whose outcome
    # is unknown (a timeout after it was written) may be sent again (docs/format.md, "Throughput")
    provider_deduplicates: bool = False
    # (ext) docs/format.md, "Value filters": name → a template over the request's variables, whose
    # text the request's other templates read as $name$ (a filter on it filters the whole text)
    build: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ContactLookup:
    """(ext) ``API.LookupContact`` (docs/format.md, "Contact names"): the request that asks the
    provider for a sender's profile (``$from$``, ``$to$``, the installation's properties) and
    the templates over its response_map's captures that make the name, tried in order: the
    first whose every capture has a value gives it."""

    request: RequestTemplate
    names: tuple[str, ...]


# --- (ext) the provider's documented send rates (docs/format.md, "Throughput") ----------------

RateUnit = Literal["messages", "segments"]


@dataclass(frozen=True, slots=True)
class Rate:
    """(ext) A send rate: ``per_second`` messages (or SMS segments, each counting one) a second on
    average, with at most ``burst`` at once after a quiet spell (a token bucket's size). A plain
    record: the loader has checked a definition's (``per_second`` > 0, ``burst`` >= 1)."""

    per_second: float
    unit: RateUnit
    burst: int


@dataclass(frozen=True, slots=True)
class ThroughputDefaults:
    """(ext) The send rates a provider documents, per sender number and per installation (its
    account); the gateway paces sends by them unless the installation sets its own
    (docs/format.md, "Throughput"). None: the definition states no such rate."""

    per_number: Rate | None = None
    per_installation: Rate | None = None


# --- (ext) how inbound media is fetched and which media is taken (docs/format.md, "Media") ------

#: (ext) The credentials media is fetched with: "none", "api" (the definition's own ``auth`` or
#: OAuth2, as its requests carry it) or credentials of its own (docs/format.md, "Media").
MediaAuth: TypeAlias = Literal["none", "api"] | BasicAuth | BearerAuth | HeaderAuth


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaResolve:
    """(ext) How a file an inbound message names by id is found (docs/format.md, "Media given as
    an id"): an optional request of the provider's API (properties and ``$media_id$``, sent with
    the definition's auth) whose ``response_map`` captures what ``download`` needs, and
    ``download``, the URL template of the file itself (properties, ``$media_id$`` and the
    request's captures; a capture in its path may be a path of several segments)."""

    request: RequestTemplate | None
    download: str


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaRules:
    """(ext) A definition's ``Media`` (docs/format.md, "Media"): what a media URL of an inbound
    message is fetched with and where those credentials may go, the size caps and the media types
    taken. The defaults are a definition without ``Media``: no credentials, the gateway's own caps
    and list of types."""

    auth: MediaAuth = "none"
    # host names ("api.twilio.com") or "*." suffixes ("*.twilio.com"), lower case, https only;
    # None: the hosts of the definition's own request URLs (server/engine/_media.py)
    hosts: tuple[str, ...] | None = None
    max_item_bytes: int | None = None  # None: the gateway's cap alone
    max_message_bytes: int | None = None
    # "type/subtype" or "type/*", lower case; None: the gateway's own list
    content_types: tuple[str, ...] | None = None
    # (ext) files named by id: how each is found (docs/format.md, "Media given as an id")
    resolve: MediaResolve | None = None


# --- (ext) the answer a stored webhook gets (docs/format.md, "Answers") ------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookAnswer:
    """(ext) The HTTP answer a provider gets once its webhook is stored: a 2xx status, a textual
    content type and a literal body (docs/format.md, "Answers"). The default is the answer a
    definition without one gets."""

    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    body: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookModel:
    """One ``Webhook`` entry (docs/format.md, "Webhook models")."""

    pointer: str  # "/Webhook/0"
    index: int
    event_key: str
    event_type: EventType
    method: HttpMethod
    parameters: Frozen  # pattern tree, with $event_key$ still in it
    # (ext) JSON Pointer of a list whose elements are payloads; a "*" token walks every element
    # of a list on the way (docs/format.md, "Nested lists")
    each: str | None = None
    # (ext) pointer of an element enclosing the payload (a prefix of ``each``) → pattern laid
    # over that element (docs/format.md, "Nested lists")
    enclosing: Mapping[str, Frozen] = field(default_factory=lambda: MappingProxyType({}))
    absent: tuple[str, ...] = ()  # (ext) JSON Pointers that must not be in the payload
    headers: Mapping[str, str] = field(  # (ext) header name → pattern string
        default_factory=lambda: MappingProxyType({})
    )
    decode: Mapping[str, str] = field(  # (ext) capture name → encoding ("Text encodings")
        default_factory=lambda: MappingProxyType({})
    )
    answer: WebhookAnswer | None = None  # (ext) the answer when this model gives the event
    # (ext) docs/format.md, "Built values, extra fields and validation patterns"
    build: Mapping[str, str] = field(  # name → template over the model's captures
        default_factory=lambda: MappingProxyType({})
    )
    patterns: Mapping[str, str] = field(  # capture name → validation pattern
        default_factory=lambda: MappingProxyType({})
    )
    keep: tuple[str, ...] = ()  # captures and built names kept as the event's extra fields
    # (ext) field → "list" | "first" | "last": which value of a repeated field the model reads
    # (docs/format.md, "Webhook bodies")
    repeated: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # (ext) more inbound event types the same payload gives, each after the model's own
    # (docs/format.md, "More event types": one payload, several events)
    also: tuple[EventType, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeDigest:
    """(ext) A ``require`` entry that is a digest (docs/format.md, "Verification handshakes"):
    the capture must be the hex ``algorithm`` digest of ``values`` (templates) joined with no
    separator, sorted first when ``sorted`` (WeChat's SHA-1 over token, timestamp and nonce)."""

    algorithm: Literal["sha1", "sha256"]
    values: tuple[str, ...]
    sorted: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Handshake:
    """(ext) One ``Handshake`` entry (docs/format.md, "Verification handshakes"): a request the
    provider sends to verify the webhook URL, answered and never an event."""

    pointer: str  # "/Handshake/0"
    method: HttpMethod
    parameters: Frozen  # pattern tree, as a webhook model's
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # capture name → a template of properties and captures it must equal, or a digest
    require: Mapping[str, str | HandshakeDigest] = field(
        default_factory=lambda: MappingProxyType({})
    )
    answer: WebhookAnswer = WebhookAnswer()  # its body a template of captures and properties
    signed: bool = True  # False: the definition's WebhookAuth is not checked


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookAuth:
    """(ext) how the provider proves a webhook is genuine (docs/format.md, "WebhookAuth");
    options keep templates."""

    type: Literal["hmac", "twilio", "ed25519", "jwt", "basic", "token", "rsa"]
    options: Mapping[str, Frozen]


@dataclass(frozen=True, kw_only=True, slots=True)
class Definition:
    """A loaded integration definition: valid, typed and immutable."""

    id: str
    name: str
    logo: str | None
    class_: str
    properties: tuple[Property, ...]
    auth: Auth | None
    oauth2: OAuth2Config | None
    send_message: RequestTemplate
    send_file: RequestTemplate | None
    webhooks: tuple[WebhookModel, ...]
    subscribe: tuple[RequestTemplate, ...]
    unsubscribe: tuple[RequestTemplate, ...]
    webhook_auth: WebhookAuth | None
    number_format: NumberFormat
    warnings: tuple[Problem, ...]
    source: Frozen  # the whole file as loaded
    # (ext) the definition's answers when no matched model has its own (docs/format.md, "Answers")
    answer_matched: WebhookAnswer | None = None
    answer_unmatched: WebhookAnswer | None = None
    # (ext) the provider's documented send rates (docs/format.md, "Throughput"); a variant keeps
    # them, as overlays cannot change them
    throughput: ThroughputDefaults = ThroughputDefaults()
    # (ext) how inbound media is fetched and which media is taken (docs/format.md, "Media"); a
    # variant keeps it ("api" stands for the variant's own auth)
    media: MediaRules = MediaRules()
    # (ext) the kind of address the provider uses (docs/format.md, "Addresses")
    addresses: AddressKind = "phone"
    # (ext) the verification requests the provider sends, answered and never events
    # (docs/format.md, "Verification handshakes")
    handshakes: tuple[Handshake, ...] = ()
    # (ext) the conversation signals' requests, each made once and at once (docs/format.md,
    # "Conversation signals"); None: the provider has none (the RPC is NOT_SUPPORTED)
    send_typing: RequestTemplate | None = None
    mark_read: RequestTemplate | None = None
    # (ext) the request that looks up an inbound message's sender's name when its payload has
    # none, and the templates that build the name from its answer (docs/format.md, "Contact
    # names"); None: the definition has none
    lookup_contact: ContactLookup | None = None
    # (ext) per-installation variants (docs/format.md, "Variants"): the properties ``variants``
    # is keyed by, in its order, and the definition each combination of their options makes,
    # built once at load. A combination that applies no overlay is this definition itself and
    # is not in the mapping.
    choosers: tuple[Property, ...] = ()
    variants: Mapping[tuple[str, ...], Definition] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def choose(self, values: Mapping[str, str | None]) -> Definition:
        """The definition an installation with these property values uses: a lookup, since
        every combination was built at load. A value that is not an option (left out, or from
        an older version of the file) counts as the property's default."""
        if not self.choosers:
            return self
        key = tuple(
            value if (value := values.get(p.name)) in p.options else (p.default or "")
            for p in self.choosers
        )
        return self.variants.get(key, self)

    def requires(self, prop: Property, values: Mapping[str, str | None]) -> bool:
        """(ext) Whether an installation with these property values must give ``prop`` one: when
        it is ``required``, or when each choice its ``required_when`` names is one of the options
        listed there — a value that is not an option counting as the choice's default, as in
        :meth:`choose` (docs/format.md, "Variants")."""
        if not prop.required_when:
            return prop.required
        choices = {p.name: p for p in self.properties if p.options}
        for name, wanted in prop.required_when.items():
            choice = choices.get(name)
            if choice is None:  # the loader refuses this; never required by a ghost
                return False
            value = values.get(name)
            if value not in choice.options:
                value = choice.default
            if value not in wanted:
                return False
        return True

    @property
    def secret_properties(self) -> frozenset[str]:
        return frozenset(p.name for p in self.properties if p.secret)
