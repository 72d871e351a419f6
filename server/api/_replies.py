"""Replies that a client with gRPC's default 4 MiB receive limit can always read.

A list or stream reply is filled up to a count *and* a size in bytes, whichever comes first, and a
single record too large for any reply is cut to fit with its ``truncated`` field set (the "Reply
sizes" comment of ``protos/msgbridge/v1/gateway.proto`` is the promise made to callers). Cutting
a record rather than refusing it means one huge record never locks a caller out of everything
after it: a stream or a listing always moves past it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = [
    "RECORD_LIMIT",
    "REPLY_BUDGET",
    "Page",
    "ReadLimit",
    "capped",
    "clip_text",
    "entry_size",
    "pages_by_size",
    "split_by_size",
]

logger = logging.getLogger(__name__)

# 3.5 MiB of encoded protobuf per reply: half a MiB under gRPC's default receive limit (4 MiB)
# leaves room for the message's framing and for a client counting a little differently.
REPLY_BUDGET = 3_670_016
# One record alone: what is left of a reply after its other fields (a page token, a reason).
RECORD_LIMIT = REPLY_BUDGET - 65_536
# How many records a page reads from the store before it knows how large they are: few enough
# that a page of near-limit records is not all held in memory at once.
_FIRST_READ = 32
# Values of lists and maps a record may hold and still have its texts cut one by one: enough for
# any real record, few enough that cutting takes milliseconds, not seconds, of the event loop.
_MAX_VALUES = 10_000

M = TypeVar("M", bound=Message)


def entry_size(record: Message) -> int:
    """Bytes ``record`` adds to a reply as one element of a repeated field: its encoding, its
    length prefix and a field tag (two bytes: enough for any field number below 2048)."""
    return _entry(record.ByteSize())


def _entry(size: int) -> int:
    return 2 + _varint_size(size) + size


# The most entry_size adds to a record's encoding below 32 GiB: a tag and a five-byte length.
_ENTRY_OVERHEAD = 7


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def clip_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def capped(record: M, limit: int = RECORD_LIMIT) -> M:
    """``record`` itself when its encoding fits ``limit``; else, changed in place, with its
    longest text (strings and bytes, at any depth) cut until it fits and ``truncated`` set.

    The cut is even: every text longer than some length is cut to that length, so one pass
    usually suffices whatever the shape of the record. List elements are dropped (the second half
    of the longest list at a time) only while the record holds too many values to weigh one by one
    cheaply, or when every text is gone and the record is still too large.
    """
    excess = record.ByteSize() - limit
    if excess <= 0:
        return record
    original = excess + limit
    if "truncated" in record.DESCRIPTOR.fields_by_name:
        record.truncated = True  # type: ignore[attr-defined]
        excess = record.ByteSize() - limit  # the flag itself takes two bytes
    while excess > 0:
        if sum(map(len, _lists(record))) > _MAX_VALUES or not _cut_evenly(
            list(_texts(record)), excess
        ):
            _drop_elements(record)
        excess = record.ByteSize() - limit
    logger.info(
        "record cut to fit a reply",
        extra={"record": record.DESCRIPTOR.name, "bytes": original, "limit": limit},
    )
    return record


@dataclass(slots=True)
class _Text:
    """One string or bytes value of a message and how to put a shorter one in its place."""

    value: str | bytes
    put: Callable[[str | bytes], None]

    @property
    def size(self) -> int:
        return len(self.value) if isinstance(self.value, bytes) else len(self.value.encode())

    def cut_to(self, size: int) -> None:
        if isinstance(self.value, bytes):
            self.put(self.value[:size])
        else:
            self.put(clip_text(self.value, size))


def _texts(message: Message) -> Iterator[_Text]:
    for descriptor, value in message.ListFields():
        if _is_map(descriptor):
            value_field = _entry_value(descriptor)
            if _is_text(value_field):
                yield from (_Text(v, _setter(value, k)) for k, v in value.items())
            elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for nested in value.values():
                    yield from _texts(nested)
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            nested_messages = value if _is_repeated(descriptor) else [value]
            for nested in nested_messages:
                yield from _texts(nested)
        elif _is_text(descriptor):
            if _is_repeated(descriptor):
                yield from (_Text(v, _setter(value, i)) for i, v in enumerate(value))
            else:
                yield _Text(value, _attribute_setter(message, descriptor.name))


def _setter(container: Any, key: Any) -> Callable[[str | bytes], None]:
    def put(new: str | bytes) -> None:
        container[key] = new

    return put


def _attribute_setter(message: Message, name: str) -> Callable[[str | bytes], None]:
    def put(new: str | bytes) -> None:
        setattr(message, name, new)

    return put


def _is_text(descriptor: FieldDescriptor) -> bool:
    return descriptor.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


def _is_repeated(descriptor: FieldDescriptor) -> bool:
    return bool(descriptor.is_repeated)


def _is_map(descriptor: FieldDescriptor) -> bool:
    entry = descriptor.message_type
    return _is_repeated(descriptor) and entry is not None and entry.GetOptions().map_entry


def _entry_value(descriptor: FieldDescriptor) -> FieldDescriptor:
    entry = descriptor.message_type
    assert entry is not None  # a map field's entry type
    value: FieldDescriptor = entry.fields_by_name["value"]
    return value


def _cut_evenly(slots: list[_Text], excess: int) -> bool:
    """Cut every text longer than a common length to it, removing at least ``excess`` bytes (or
    all there is); False when there was nothing left to cut."""
    sizes = sorted((slot.size for slot in slots), reverse=True)
    if not sizes or sizes[0] == 0:
        return False
    # The largest common length that removes enough: walk down the sizes, widening the group of
    # texts above the line, until the group's surplus over the next size covers the excess.
    level, removed = 0, 0
    for rank, size in enumerate(sizes):
        following = sizes[rank + 1] if rank + 1 < len(sizes) else 0
        removed += (rank + 1) * (size - following)
        if removed >= excess:
            level = following + (removed - excess) // (rank + 1)
            break
    for slot in slots:
        if slot.size > level:
            slot.cut_to(level)
    return True


def _drop_elements(message: Message) -> None:
    """Drop the second half of the longest list or map in ``message`` (at any depth)."""
    longest: Any = None
    for container in _lists(message):
        if longest is None or len(container) > len(longest):
            longest = container
    if not longest:  # pragma: no cover - a record without lists or text is small
        raise ValueError(f"{message.DESCRIPTOR.name} cannot be cut to size")
    if isinstance(longest, MutableSequence):
        del longest[len(longest) // 2 :]
    else:  # a map: its entries in the order it gives them
        for key in list(longest)[len(longest) // 2 :]:
            del longest[key]


def _lists(message: Message) -> Iterator[Any]:
    """Every repeated field and map of ``message``, at any depth."""
    for descriptor, value in message.ListFields():
        if _is_repeated(descriptor):
            yield value
        if _is_map(descriptor):
            if _entry_value(descriptor).type == FieldDescriptor.TYPE_MESSAGE:
                for nested in value.values():
                    yield from _lists(nested)
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            for nested in value if _is_repeated(descriptor) else [value]:
                yield from _lists(nested)


@dataclass(slots=True)
class Page(Generic[M]):
    """Records for one reply: at most ``count`` of them and ``budget`` bytes.

    :meth:`add` takes a record while both allow it (the first always: it is :func:`capped`);
    ``cut`` tells that the byte budget, not the count, ended the page.
    """

    count: int
    budget: int = REPLY_BUDGET
    items: list[M] = field(default_factory=list)
    size: int = 0
    largest: int = 0
    cut: bool = False

    def add(self, record: M) -> bool:
        # The encoded size is computed once for a record that fits (the common case): it costs
        # a walk of the record, and a stream sizes every event it sends.
        limit = min(RECORD_LIMIT, self.budget - _ENTRY_OVERHEAD)
        encoded = record.ByteSize()
        if encoded > limit:
            record = capped(record, limit)
            encoded = record.ByteSize()
        size = _entry(encoded)
        if self.items and self.size + size > self.budget:
            self.cut = True
            return False
        self.items.append(record)
        self.size += size
        self.largest = max(self.largest, size)
        return True

    @property
    def full(self) -> bool:
        return self.cut or len(self.items) >= self.count

    def read_limit(self) -> int:
        """How many records to read from the store next: the rest of the page, but no more than
        are likely to fit the rest of the budget, judged by the largest record so far (plus one,
        so that a page that can take no more learns it is full)."""
        left = self.count - len(self.items)
        if not self.items:
            return max(1, min(left, _FIRST_READ))
        fitting = (self.budget - self.size) // max(self.largest, 1) + 1
        return max(1, min(left, fitting))


def pages_by_size(records: Iterable[M], budget: int = REPLY_BUDGET) -> Iterator[Page[M]]:
    """``records`` in order, in pages that each fit one reply of ``budget`` bytes."""
    page: Page[M] = Page(count=2**31, budget=budget)
    for record in records:
        if not page.add(record):
            yield page
            page = Page(count=2**31, budget=budget)
            page.add(record)
    if page.items:
        yield page


def split_by_size(records: Iterable[M], budget: int = REPLY_BUDGET) -> Iterator[list[M]]:
    """``records`` in order, in lists that each fit one reply of ``budget`` bytes."""
    return (page.items for page in pages_by_size(records, budget))


@dataclass(slots=True)
class ReadLimit:
    """How many records a stream reads from the store at once: at most ``most``, and about one
    reply's worth once records are large, so that a backlog of large records is not held in
    memory hundreds at a time. It starts small and at most doubles from one read to the next.
    """

    most: int
    current: int = _FIRST_READ

    def __call__(self) -> int:
        return max(1, min(self.most, self.current))

    def saw(self, records: Iterable[Message]) -> None:
        """Size the next read by the largest of ``records`` (the last read, converted)."""
        self.saw_largest(max((entry_size(record) for record in records), default=0))

    def saw_largest(self, largest: int) -> None:
        """Size the next read by the largest entry (:func:`entry_size`) the last read gave."""
        fitting = REPLY_BUDGET // largest if largest else self.most
        self.current = max(1, min(fitting, 2 * self()))
