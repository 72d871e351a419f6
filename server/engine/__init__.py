"""The integration definition engine: pure code, no I/O, no clock, no randomness.

Load a definition (:func:`load_definition`), render the requests it describes
(:func:`render_request`), map a provider's answer (:func:`map_response`) and match inbound webhooks
to events (:func:`match_webhook`); :func:`plan_send` says which requests one send makes.
:func:`text_encoding` and :func:`segment_count` say whether a text fits GSM-7 and how many SMS
segments it takes. Every error raised is an :class:`EngineError`.
"""

from ._answer import ANSWER_BODY_MAX_BYTES, DEFAULT_ANSWER, choose_answer
from ._contact_lookup import CONTACT_NAME_FIELD, contact_name_from_answer
from ._document import MAX_SIZE as MAX_DEFINITION_BYTES
from ._document import TOO_LARGE as DEFINITION_TOO_LARGE
from ._each import MEDIA_KINDS, media_kind, media_kinds
from ._errors import DefinitionError, EngineError, Problem, RenderError, WebhookParseError
from ._find import Found, find_in_answer, only_if_holds
from ._gsm import Encoding, segment_count, text_encoding
from ._handshake import (
    HandshakeMatch,
    HandshakeRefused,
    answer_handshake,
    match_handshake,
    needs_properties,
)
from ._load import check_definition, load_definition
from ._match import (
    InboundEvent,
    MatchResult,
    NearMiss,
    UnmatchedPayload,
    WebhookRequest,
    match_webhook,
)
from ._media import (
    content_type_allowed,
    credentials_follow_redirect,
    media_caps,
    media_credentials,
    media_credentials_apply,
    media_needs_bearer_token,
)
from ._media_resolve import (
    MEDIA_ID,
    MEDIA_ID_SCHEME,
    ResolveAnswer,
    download_url,
    media_id_of,
    media_id_url,
    read_resolve_answer,
)
from ._model import (
    AddressKind,
    Auth,
    BasicAuth,
    BearerAuth,
    ContactLookup,
    Definition,
    EventType,
    FindRule,
    Frozen,
    Handshake,
    HeaderAuth,
    JwtAuth,
    MediaAuth,
    MediaResolve,
    MediaRules,
    NumberFormat,
    OAuth2Config,
    Property,
    Rate,
    RequestTemplate,
    ResponseRules,
    StepCondition,
    ThroughputDefaults,
    TokenAuth,
    WebhookAnswer,
    WebhookAuth,
    WebhookModel,
    freeze,
    thaw,
)
from ._parse import parse_webhook
from ._placeholders import Placeholder, parse_template
from ._render import (
    RenderedRequest,
    Value,
    auth_variables,
    compile_requests,
    render_request,
    response_variables,
    template_variables,
)
from ._response import ResponseOutcome, map_response
from ._response_rules import ErrorMatch, Judgement, judge_response
from ._send_plan import (
    MAX_REQUESTS_PER_SEND,
    RequestStep,
    TooManyRequests,
    plan_send,
    split_text,
)
from ._token_answer import TokenAnswer, read_token

__all__ = [
    "ANSWER_BODY_MAX_BYTES",
    "CONTACT_NAME_FIELD",
    "DEFAULT_ANSWER",
    "DEFINITION_TOO_LARGE",
    "MAX_DEFINITION_BYTES",
    "MAX_REQUESTS_PER_SEND",
    "MEDIA_ID",
    "MEDIA_ID_SCHEME",
    "MEDIA_KINDS",
    "AddressKind",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "ContactLookup",
    "Definition",
    "DefinitionError",
    "Encoding",
    "EngineError",
    "ErrorMatch",
    "EventType",
    "FindRule",
    "Found",
    "Frozen",
    "Handshake",
    "HandshakeMatch",
    "HandshakeRefused",
    "HeaderAuth",
    "InboundEvent",
    "Judgement",
    "JwtAuth",
    "MatchResult",
    "MediaAuth",
    "MediaResolve",
    "MediaRules",
    "NearMiss",
    "NumberFormat",
    "OAuth2Config",
    "Placeholder",
    "Problem",
    "Property",
    "Rate",
    "RenderError",
    "RenderedRequest",
    "RequestStep",
    "RequestTemplate",
    "ResolveAnswer",
    "ResponseOutcome",
    "ResponseRules",
    "StepCondition",
    "ThroughputDefaults",
    "TokenAnswer",
    "TokenAuth",
    "TooManyRequests",
    "UnmatchedPayload",
    "Value",
    "WebhookAnswer",
    "WebhookAuth",
    "WebhookModel",
    "WebhookParseError",
    "WebhookRequest",
    "answer_handshake",
    "auth_variables",
    "check_definition",
    "choose_answer",
    "compile_requests",
    "contact_name_from_answer",
    "content_type_allowed",
    "credentials_follow_redirect",
    "download_url",
    "find_in_answer",
    "freeze",
    "judge_response",
    "load_definition",
    "map_response",
    "match_handshake",
    "match_webhook",
    "media_caps",
    "media_credentials",
    "media_credentials_apply",
    "media_id_of",
    "media_id_url",
    "media_kind",
    "media_kinds",
    "media_needs_bearer_token",
    "needs_properties",
    "only_if_holds",
    "parse_template",
    "parse_webhook",
    "plan_send",
    "read_resolve_answer",
    "read_token",
    "render_request",
    "response_variables",
    "segment_count",
    "split_text",
    "template_variables",
    "text_encoding",
    "thaw",
]
