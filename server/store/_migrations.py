"""Versioned schema migrations, one folder of ``.sql`` files per database dialect.

A migration is a file ``migrations/<dialect>/NNNN_name.sql`` (``sqlite`` or ``postgres``; four
digits, then lowercase words):
versions count 1, 2, 3, … without gaps and are applied in order, each in its own transaction,
recorded in ``schema_migrations`` (version, name, checksum, applied_at). Applying is idempotent:
an applied version is skipped, so opening the store again changes nothing. Two processes opening
one database at once are safe: the row that records a version is inserted first, in the same
``BEGIN IMMEDIATE`` transaction as the migration's statements, so only one of them applies it.
(The PostgreSQL store applies its own folder the same way under an advisory lock; it shares
:func:`load_migrations` and :func:`pending_migrations` from here; see
:mod:`server.store.postgres`.)

A database whose schema is newer than this program's migrations is refused rather than used.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable

from ._base import StoreError
from ._rows import encode_time

__all__ = [
    "Migration",
    "MigrationError",
    "apply_migrations",
    "load_migrations",
    "pending_migrations",
]

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)
"""


class MigrationError(StoreError):
    """A migration could not be applied, or the database's schema is not one this code knows."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """The SHA-256 of the statements: lines that are only a ``--`` comment do not count, so
        rewording a comment does not make an applied migration look changed."""
        statements = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return hashlib.sha256(statements.encode()).hexdigest()

    def recorded_as(self, checksum: str) -> bool:
        """Whether ``checksum``, as ``schema_migrations`` holds it, is this migration's: its
        :attr:`checksum`, or what an older msgbridge recorded (the SHA-256 of the whole file,
        comments included, as that version shipped it)."""
        return checksum in (
            self.checksum,
            hashlib.sha256(self.sql.encode()).hexdigest(),
            *_FORMER_FILE_CHECKSUMS.get(self.version, ()),
        )


# The whole-file checksums older versions recorded for migrations whose comments were reworded
# since (they cited an outside document): the files as those versions shipped them, either dialect.
_FORMER_FILE_CHECKSUMS: dict[int, frozenset[str]] = {
    1: frozenset(
        {
            "b6a08dca7bd0319fc67f66f65b695af3225e4c88e633aea7dcf70087bcae9b37",  # sqlite
            "a3cadfc8d108d87e877ec5e0e56c15b158e4e81102b8e70c76b21220eeb3211c",  # postgres
        }
    ),
    2: frozenset(
        {
            "b304d6b6b4a443c985340a933a67893b45e6fb51f662ad17eb84e2573b32c231",  # sqlite
            "116971713c012e1cedae411ce068dfa2776205f5ae43be17d333d8286265cbac",  # postgres
        }
    ),
}


def load_migrations(
    folder: Traversable | None = None, *, dialect: str = "sqlite"
) -> tuple[Migration, ...]:
    """The migrations in ``folder`` (default: the ones shipped here for ``dialect``, ``sqlite`` or
    ``postgres``), in version order."""
    if folder is None:
        folder = resources.files(__package__ or "server.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
            continue
        found.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration versions must count 1, 2, 3, …: expected {expected:04d}, "
                f"found {migration.version:04d}_{migration.name}.sql"
            )
    return tuple(found)


def apply_migrations(
    conn: sqlite3.Connection, migrations: Iterable[Migration]
) -> tuple[Migration, ...]:
    """Apply every migration not yet recorded, in order; return the ones applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open transaction.
    """
    migrations = tuple(migrations)
    try:
        conn.execute(_CREATE_TABLE)
        applied = _applied(conn)
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot read schema_migrations: {exc}") from exc
    done: list[Migration] = []
    for migration in pending_migrations(applied, migrations):
        if _apply_one(conn, migration):
            done.append(migration)
            logger.info("applied schema migration %04d_%s", migration.version, migration.name)
    return tuple(done)


def pending_migrations(
    applied: Mapping[int, str], migrations: Iterable[Migration]
) -> tuple[Migration, ...]:
    """The migrations not in ``applied`` (version → checksum), in order.

    Raises :class:`MigrationError` when the database is newer than ``migrations``; warns about an
    applied migration whose file changed since (the change is not applied).
    """
    migrations = tuple(migrations)
    known = max((m.version for m in migrations), default=0)
    newest = max(applied, default=0)
    if newest > known:
        raise MigrationError(
            f"the database's schema is version {newest}, newer than this program's ({known}); "
            "upgrade msgbridge or use another database"
        )
    pending: list[Migration] = []
    for migration in migrations:
        if migration.version in applied:
            if not migration.recorded_as(applied[migration.version]):
                logger.warning(
                    "migration %04d_%s changed after it was applied; the change is not applied",
                    migration.version,
                    migration.name,
                )
            continue
        pending.append(migration)
    return tuple(pending)


def _applied(conn: sqlite3.Connection) -> dict[int, str]:
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(version): str(checksum) for version, checksum in rows}


def _apply_one(conn: sqlite3.Connection, migration: Migration) -> bool:
    """Apply one migration in its own transaction; False when another process applied it first.

    ``executescript`` commits any open transaction before it runs, so the transaction is opened
    by the script itself, and the recording row goes first: a concurrent opener fails on its
    primary key before running a single statement of the migration.
    """
    # Every interpolated value is ours: an int, a name matched by _FILE_NAME, a hex digest.
    record = (
        f"INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES "  # noqa: S608
        f"({migration.version:d}, '{migration.name}', '{migration.checksum}', "
        f"{encode_time(datetime.now(UTC)):d});"
    )
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{record}\n{migration.sql}\n;")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.IntegrityError) and migration.version in _applied(conn):
            return False
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} failed: {exc}"
        ) from exc
    return True
