"""(ext) A send's rich parts (docs/format.md, "Replies, templates and reply-to"): quick replies
and a message template as frozen dataclasses, each turned into its protobuf message with
``to_proto``, and how the CLI reads them (``--reply ID:TITLE[:DESCRIPTION]``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from msgbridge.v1 import gateway_pb2

__all__ = ["MessageTemplate", "QuickReply", "reply_argument", "template_of"]


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A quick reply or button: ``id`` comes back when it is chosen, ``title`` is shown, and an
    optional ``description`` (a list row's second line)."""

    id: str
    title: str
    description: str = ""

    def to_proto(self) -> gateway_pb2.QuickReply:
        return gateway_pb2.QuickReply(id=self.id, title=self.title, description=self.description)


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A message template the provider approved: its ``name``, ``language`` and ``parameters``
    in the template's order (a WhatsApp template, for a message outside the care window)."""

    name: str
    language: str = ""
    parameters: Sequence[str] = ()

    def to_proto(self) -> gateway_pb2.MessageTemplate:
        return gateway_pb2.MessageTemplate(
            name=self.name, language=self.language, parameters=list(self.parameters)
        )


def reply_argument(text: str) -> QuickReply:
    """``ID:TITLE`` or ``ID:TITLE:DESCRIPTION``, split at the first two ``:`` (so only the
    description may hold one)."""
    reply_id, colon, rest = text.partition(":")
    if not colon or not reply_id or not rest:
        raise argparse.ArgumentTypeError(f"expected ID:TITLE[:DESCRIPTION], got {text!r}")
    title, _, description = rest.partition(":")
    return QuickReply(reply_id, title, description)


def template_of(name: str, language: str, parameters: Sequence[str]) -> MessageTemplate | None:
    """The CLI's ``--template``, ``--language`` and ``--param`` as a template (None without
    ``--template``; a language or parameters without it is a usage mistake)."""
    if not name:
        if language or parameters:
            raise ValueError("--language and --param need --template")
        return None
    return MessageTemplate(name, language, tuple(parameters))
