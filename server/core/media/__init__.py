"""Media (docs/media.md): inbound files fetched and kept before their event is released
(:class:`MediaFetcher`, with each message's rules from its definition: :class:`MediaRulesOf`),
and the stored files — uploads, signed URLs, reads, retention (:class:`MediaLibrary`); built
together by :func:`build_media`."""

from ._build import Media, build_media
from ._fetcher import FetchRules, MediaFetcher, RulesFor
from ._library import MediaLibrary
from ._rules import MediaRulesOf

__all__ = [
    "FetchRules",
    "Media",
    "MediaFetcher",
    "MediaLibrary",
    "MediaRulesOf",
    "RulesFor",
    "build_media",
]
