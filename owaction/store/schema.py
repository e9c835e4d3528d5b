"""The executions table, defined once: its columns, its indexes, and how it is migrated."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from owaction.store.session import Database

TABLE = "openwhisk_action_executions"

# (name, PyDAL type, options); ExecutionRecord has exactly these fields, in this order.
COLUMNS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("execution_id", "string", {"length": 64, "notnull": True}),
    ("namespace", "string", {"length": 256}),
    ("action_name", "string", {"length": 600, "notnull": True}),
    ("action_type", "string", {"length": 16, "notnull": True}),
    ("payload", "text", {}),
    ("blocking", "boolean", {}),
    ("timeout", "integer", {}),
    ("activation_id", "string", {"length": 64}),
    ("result", "text", {}),
    ("duration_ms", "integer", {}),
    ("status", "string", {"length": 16, "notnull": True}),
    ("success", "boolean", {}),
    ("error", "text", {}),
    ("created_at", "datetime", {"notnull": True}),
    ("completed_at", "datetime", {}),
    ("source", "string", {"length": 32}),
    ("caller", "string", {"length": 128}),
    ("request_id", "string", {"length": 128}),
    ("idempotency_key", "string", {"length": 255}),
    ("request_hash", "string", {"length": 128}),
    ("status_code", "integer", {}),
    ("updated_at", "datetime", {}),
    ("trace_id", "string", {"length": 128}),
    ("cached", "boolean", {"default": False}),
    ("callback_url", "string", {"length": 2048}),
    ("lease_owner", "string", {"length": 128}),
    ("lease_until", "datetime", {}),
    ("attempts", "integer", {"default": 0}),
    ("callback_state", "string", {"length": 16}),
    ("callback_attempts", "integer", {"default": 0}),
    ("callback_next_at", "datetime", {}),
    ("callback_status_code", "integer", {}),
    # A failure's domain error code and Retry-After, so a replay raises the same error again.
    ("error_code", "string", {"length": 64}),
    ("retry_after", "integer", {}),
)

# What a new row sets; the outbox's own columns are filled in later by the deliverer.
INSERT_COLUMNS = tuple(name for name, _, _ in COLUMNS
                       if not name.startswith("callback_") or name == "callback_url")

# The rows that still owe their caller a callback (a URL, neither delivered nor given up). The
# worker's outbox polls only these (owaction.store.outbox), whatever the size of the table; its
# query uses this text as it is, since SQLite uses a partial index only for a query whose WHERE
# contains the index's own terms.
OWED_CALLBACK = ("callback_url IS NOT NULL"
                 " AND (callback_state IS NULL OR callback_state = 'pending')")

# (index name, columns, unique, partial index's WHERE). PyDAL's create_index has no IF NOT EXISTS,
# and indexes must be created idempotently by every process that starts, so these are issued as
# guarded statements.
INDEXES = (
    ("ux_owae_execution_id", ("execution_id",), True, None),
    ("ux_owae_caller_idempotency", ("caller", "idempotency_key"), True, None),
    ("ix_owae_action_created", ("action_name", "created_at"), False, None),
    ("ix_owae_status", ("status",), False, None),
    ("ix_owae_created_at", ("created_at",), False, None),
    ("ix_owae_callbacks_owed", ("id",), False, OWED_CALLBACK),
)

# Indexes of earlier releases that no query reads, dropped by the migration: every insert and
# every completion (it changes activation_id) wrote each of them, about a sixth of PostgreSQL's
# CPU for the two writes of a call (bench/README.md). An operator who looks rows up by
# activation or request id in SQL often can create an index under a name of their own.
RETIRED_INDEXES = ("ix_owae_activation_id", "ix_owae_source_request")


def define(db, *, migrate: bool = False, fake_migrate: bool = False, only=None) -> None:
    """Define the table on ``db``; ``only`` restricts it to the named columns."""
    from pydal import Field

    fields = [Field(name, kind, **options) for name, kind, options in COLUMNS
              if only is None or name in only]
    db.define_table(TABLE, *fields, migrate=migrate, fake_migrate=fake_migrate)


def migrate(database: Database, db) -> None:
    """Create or migrate the table and its indexes on ``db``, whatever PyDAL remembers."""
    marker = database.migration_marker(db, TABLE)
    existing = existing_columns(database, db)
    if not existing and os.path.exists(marker):
        # The database was replaced (a deleted SQLite file, a new PostgreSQL database)
        # but PyDAL's note that the table exists survived: without this it would never
        # create the table again.
        os.remove(marker)
    if existing and not os.path.exists(marker):
        # Another process (with another folder) created the table. Teach this folder's PyDAL
        # what exists, via a throwaway definition of the columns present, so the real
        # definition below only adds what is missing instead of re-creating the table.
        with database.scratch_dal() as scratch:
            define(scratch, migrate=True, fake_migrate=True, only=existing)
    define(db, migrate=True)
    for name, columns, unique, where in INDEXES:
        cols = ", ".join(f'"{c}"' for c in columns)
        kind = "UNIQUE INDEX" if unique else "INDEX"
        partial = f" WHERE {where}" if where else ""
        db.executesql(f'CREATE {kind} IF NOT EXISTS "{name}" ON "{TABLE}" ({cols}){partial}')
    for name in RETIRED_INDEXES:
        db.executesql(f'DROP INDEX IF EXISTS "{name}"')


def existing_columns(database: Database, db) -> set[str]:
    """The columns the table has in the database now (none when it does not exist)."""
    if database.is_postgres:
        rows = db.executesql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            placeholders=(TABLE,),
        )
    else:
        rows = db.executesql(f'PRAGMA table_info("{TABLE}")')
        rows = [(r[1],) for r in rows]
    return {r[0] for r in rows}
