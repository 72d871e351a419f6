"""The statements whose cost must not grow with the store, written once for both backends.

A listing reads its page from an index whose order is the listing's own, going on after the key
of the previous page's last row — ``(created_at, id)``, ``(received_at, id)`` — rather than
sorting the table and skipping an offset; a filtered read of the event log seeks each wanted type
(within each organisation named or, for a few, in scope) in cursor order and merges those ranges,
rather than walking the log until enough rows match (the indexes:
``migrations/*/…_keyset_indexes.sql``). The oldest events are purged a chunk at a time
(:class:`EventsPurgeStep`).

Only the conditions a call gives are written, each as a plain comparison, so that the planner of
either backend sees which index serves it (a ``? IS NULL OR column = ?`` serves none). The text
depends only on which filters are given, never on their values: each backend prepares a handful
of statements and reuses them. A :class:`Dialect` says how a backend writes a parameter and a
membership test; the stores bind the values in the order the :class:`Statement` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, NamedTuple, TypeVar

from ._base import (
    EventFilter,
    EventRecord,
    InstallationRecord,
    MessageRecord,
    MessageState,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ._rows import Rows

__all__ = [
    "Dialect",
    "EventsPurgeStep",
    "KeysetListings",
    "Selects",
    "Statement",
    "read_events",
]

_Record = TypeVar("_Record")


@dataclass(frozen=True, kw_only=True, slots=True)
class Dialect:
    """How one backend writes what these statements need."""

    #: The ``n``-th parameter (from 1), as the statement's text names it.
    mark: Callable[[int], str]
    #: "``column`` is one of the list parameter ``mark``".
    member: Callable[[str, str], str]
    #: A list parameter's value, from its items.
    listed: Callable[[Sequence[str]], Any]
    #: A time parameter's value.
    time: Callable[[datetime], Any]
    #: The limit that means "no limit".
    no_limit: Any
    #: Whether each arm of a merge is written ``(SELECT … ORDER BY … LIMIT …)``: PostgreSQL
    #: merges arms in order (a Merge Append) only when each is ordered by itself; SQLite orders
    #: the arms of a compound SELECT by the compound's ORDER BY and takes no parentheses.
    ordered_arms: bool = False


class Statement(NamedTuple):
    """A statement's text and its parameters' values, in order (``conn.execute(*statement)``)."""

    sql: str
    params: tuple[Any, ...]


@dataclass(slots=True)
class _Where:
    """The conditions of one statement and the parameters they name, in order."""

    dialect: Dialect
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def param(self, value: Any) -> str:
        self.params.append(value)
        return self.dialect.mark(len(self.params))

    def equal(self, column: str, value: str | None) -> None:
        if value is not None:
            self.conditions.append(f"{column} = {self.param(value)}")

    def one_of(self, column: str, values: Iterable[str] | None) -> None:
        if values is not None:
            listed = self.dialect.listed(sorted(values))
            self.conditions.append(self.dialect.member(column, self.param(listed)))

    def compare(self, column: str, operator: str, value: Any) -> None:
        if value is not None:
            self.conditions.append(f"{column} {operator} {self.param(value)}")

    def after_key(
        self, key_columns: tuple[str, str], key: tuple[Any, str] | None, *, descending: bool
    ) -> None:
        """Rows past ``key`` in the order ``key_columns`` (ascending, or descending)."""
        if key is not None:
            marks = f"{self.param(key[0])}, {self.param(key[1])}"
            operator = "<" if descending else ">"
            self.conditions.append(f"({', '.join(key_columns)}) {operator} ({marks})")

    def where(self, *more: str) -> str:
        conditions = [*self.conditions, *more]
        return " WHERE " + " AND ".join(conditions) if conditions else ""

    def statement(self, sql: str) -> Statement:
        return Statement(sql, tuple(self.params))


def _ordered(select: str, where: _Where, order: str, limit: Any) -> Statement:
    """``select`` of the rows ``where`` takes, in ``order`` up to ``limit``: one range of an
    index in that order."""
    return where.statement(select + where.where() + f" ORDER BY {order} LIMIT {where.param(limit)}")


# A listing of rows with one of more values than this (a token scoped to many organisations)
# filters the rows of the listing's own order instead of merging one range per value; an event
# read merges at most this many (organisation, type) ranges.
_MERGED_AT_MOST = 16
_MERGED_PAIRS_AT_MOST = 64
# ``column || ''`` is no column an index holds: filtering on it keeps the planner to the index
# that gives the order (a membership test on an indexed column can make it use that index's
# ranges and then sort them).
_UNINDEXED = "({} || '')"


def _one_of(
    select: str,
    where: _Where,
    column: str,
    values: frozenset[str] | None,
    order: str,
    limit: Any,
) -> Statement:
    """``select`` of the rows ``where`` takes whose ``column`` is one of ``values`` (None: any),
    in ``order`` up to ``limit``: the ranges of an index that starts with ``column`` merged (no
    sort), or for many values (or none) one range of the order's own index, filtered."""
    if values is None:
        return _ordered(select, where, order, limit)
    if not values or len(values) > _MERGED_AT_MOST:
        where.one_of(_UNINDEXED.format(column), values)
        return _ordered(select, where, order, limit)
    return _merged(select, where, column, values, order, limit)


def _merged(
    select: str,
    where: _Where,
    column: str | tuple[str, ...],
    values: Iterable[str] | Iterable[tuple[str, ...]],
    order: str,
    limit: Any,
) -> Statement:
    """``select`` of the rows ``where`` takes, in ``order`` up to ``limit``: one range per value
    of ``column`` (or per tuple of values of several columns; each range served in ``order`` by
    an index that starts with those columns), merged. Each range is read only as far as the merge
    takes rows from it, so a value that matches few rows costs a seek, not a walk, and many
    matching rows cost no more than one range would."""
    names = (column,) if isinstance(column, str) else column
    keys = sorted((value,) if isinstance(value, str) else value for value in values)

    def equal(key: tuple[str, ...]) -> list[str]:
        return [f"{name} = {where.param(value)}" for name, value in zip(names, key, strict=True)]

    if len(keys) == 1:  # one range: nothing to merge
        where.conditions.extend(equal(keys[0]))
        return _ordered(select, where, order, limit)
    arms = [select + where.where(*equal(key)) for key in keys]
    tail = f" ORDER BY {order} LIMIT {where.param(limit)}"
    if where.dialect.ordered_arms:
        arms = [f"({arm}{tail})" for arm in arms]
    return where.statement(" UNION ALL ".join(arms) + tail)


class EventsPurgeStep(NamedTuple):
    """One step of purging the oldest events (``Store.purge``'s ``events_before``) as a
    prefix of the log, a chunk at a time: each statement reads at most a chunk of rows, however
    many are due (one query used to read the whole due prefix to find the first event kept)."""

    #: ``1`` the time, ``2`` the chunk: the first cursor of the log's first ``chunk`` events that
    #: was received at or after the time (NULL: none was), and the last of them (NULL: no event).
    head: str
    #: ``1`` a cursor: delete the events below it (at most the chunk the head read).
    delete: str

    @classmethod
    def of(cls, dialect: Dialect) -> EventsPurgeStep:
        time, chunk = dialect.mark(1), dialect.mark(2)
        return cls(
            head=f"""
WITH head AS (SELECT cursor, received_at FROM events ORDER BY cursor LIMIT {chunk})
SELECT (SELECT MIN(cursor) FROM head WHERE received_at >= {time}), (SELECT MAX(cursor) FROM head)
""",  # noqa: S608 - marks only
            delete=f"DELETE FROM events WHERE cursor < {dialect.mark(1)}",  # noqa: S608
        )

    @staticmethod
    def next(head: Sequence[int | None], bound: int) -> tuple[int, bool]:
        """From a head's row and the bound of the step before (1 at first): the cursor to delete
        below — the first kept event's, once every event is kept — and whether the purge
        ends there (a kept event was found, or no event is left)."""
        first_kept, last = head
        if first_kept is not None:
            return first_kept, True
        if last is None:
            return bound, True
        return last + 1, False


def read_events(
    dialect: Dialect,
    select: str,
    *,
    after_cursor: int,
    up_to: int | None = None,
    event_filter: EventFilter,
    limit: int,
) -> Statement:
    """Events with ``after_cursor < cursor (<= up_to)`` that ``event_filter`` matches, in cursor
    order: with types (an API read always has them), each type's range of ``events_by_type``, or
    of ``events_by_org_type`` for a named organisation — or for each of the few organisations a
    scoped caller sees — merged."""
    where = _Where(dialect)
    where.compare("cursor", ">", after_cursor)
    where.compare("cursor", "<=", up_to)
    where.equal("org_id", event_filter.org_id)
    where.equal("integration_id", event_filter.integration_id)
    types, orgs = event_filter.types, event_filter.orgs
    scope = orgs if orgs is not None and event_filter.org_id is None else frozenset()
    if 0 < len(scope) * len(types) <= _MERGED_PAIRS_AT_MOST:
        pairs = [(org, kind) for org in scope for kind in types]
        return _merged(select, where, ("org_id", "type"), pairs, "cursor", limit)
    where.one_of(_UNINDEXED.format("org_id"), orgs)
    if not types:
        return _ordered(select, where, "cursor", limit)
    return _merged(select, where, "type", types, "cursor", limit)


@dataclass(frozen=True, slots=True)
class Selects:
    """A backend's ``SELECT … FROM`` of each listed table, in its :mod:`._rows` column order."""

    installation: str
    message: str
    webhook_request: str
    event: str


class KeysetListings:
    """The Store's listings and its event read, for both backends: a backend gives its
    :class:`Dialect`, its :class:`Selects`, its :class:`~server.store._rows.Rows` and how it
    runs one read (:meth:`_fetch`)."""

    _DIALECT: ClassVar[Dialect]
    _SELECTS: ClassVar[Selects]
    _ROWS: ClassVar[Rows[Any]]

    async def _fetch(
        self, statement: Statement, convert: Callable[[Any], _Record]
    ) -> tuple[_Record, ...]:
        """Run ``statement`` on a reader; its rows, each through ``convert``."""
        raise NotImplementedError

    def _time_key(self, key: tuple[datetime, str] | None) -> tuple[Any, str] | None:
        return None if key is None else (self._DIALECT.time(key[0]), key[1])

    async def list_installations(
        self,
        *,
        org_id: str | None = None,
        integration_id: str | None = None,
        org_ids: frozenset[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> tuple[InstallationRecord, ...]:
        """Oldest first (``created_at``, id): a range of ``installations_by_created``, or of
        ``installations_by_org`` or ``installations_by_integration`` for one of them; for a
        few organisations, their ranges of ``installations_by_org`` merged."""
        where = _Where(self._DIALECT)
        where.equal("org_id", org_id)
        where.equal("integration_id", integration_id)
        where.after_key(("created_at", "id"), self._time_key(after), descending=False)
        no_limit = self._DIALECT.no_limit if limit is None else limit
        select, order = self._SELECTS.installation, "created_at, id"
        if org_id is not None:  # the named organisation's range, unless out of scope
            where.one_of("org_id", org_ids)
            org_ids = None
        statement = _one_of(select, where, "org_id", org_ids, order, no_limit)
        return await self._fetch(statement, self._ROWS.installation)

    async def list_messages(
        self,
        *,
        org_ids: frozenset[str] | None = None,
        installation_id: str | None = None,
        states: frozenset[MessageState] = frozenset(),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[MessageRecord, ...]:
        """Newest first (``created_at``, id, descending): a range of ``messages_by_created``,
        or of ``messages_by_installation`` for one; for a few organisations, their ranges of
        ``messages_by_org`` merged."""
        time = self._DIALECT.time
        where = _Where(self._DIALECT)
        where.equal("installation_id", installation_id)
        where.one_of("state", {MessageState(s).value for s in states} if states else None)
        where.compare("created_at", ">=", None if created_after is None else time(created_after))
        where.compare("created_at", "<", None if created_before is None else time(created_before))
        where.after_key(("created_at", "id"), self._time_key(after), descending=True)
        select, order = self._SELECTS.message, "created_at DESC, id DESC"
        if installation_id is not None:  # the installation's range, unless out of scope
            where.one_of("org_id", org_ids)
            org_ids = None
        statement = _one_of(select, where, "org_id", org_ids, order, limit)
        return await self._fetch(statement, self._ROWS.message)

    async def list_webhook_requests(
        self,
        *,
        outcomes: frozenset[WebhookOutcome],
        integration_id: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[WebhookRequestRecord, ...]:
        """Newest first (``received_at``, id, descending): a range of
        ``webhook_requests_by_received``; with some outcomes only, each outcome's range of
        ``webhook_requests_by_outcome``, merged."""
        where = _Where(self._DIALECT)
        where.equal("integration_id", integration_id)
        where.after_key(("received_at", "id"), self._time_key(after), descending=True)
        order = "received_at DESC, id DESC"
        select = self._SELECTS.webhook_request
        wanted = {WebhookOutcome(o).value for o in outcomes}
        if not wanted or wanted == {o.value for o in WebhookOutcome}:
            statement = _ordered(select, where, order, limit)
        else:
            statement = _merged(select, where, "outcome", wanted, order, limit)
        return await self._fetch(statement, self._ROWS.webhook_request)

    async def read_events(
        self,
        after_cursor: int,
        *,
        filter: EventFilter = EventFilter(),  # noqa: B008 (frozen, never mutated)
        limit: int = 500,
    ) -> tuple[EventRecord, ...]:
        statement = read_events(
            self._DIALECT,
            self._SELECTS.event,
            after_cursor=after_cursor,
            event_filter=filter,
            limit=limit,
        )
        return await self._fetch(statement, self._ROWS.event)
