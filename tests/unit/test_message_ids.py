"""A message's id: a random (version 4) UUID in canonical text form, as uuid.uuid4() makes it."""

from __future__ import annotations

import uuid

from server.core.send._sender import new_message_id


def test_a_message_id_is_a_canonical_version_4_uuid() -> None:
    ids = [new_message_id() for _ in range(2000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower-case hex, dashes at 8-4-4-4-12
    assert len(set(ids)) == len(ids)
