"""The store's errors: the database is unavailable, or an idempotency key is taken."""

from __future__ import annotations

from typing import TYPE_CHECKING

from owaction.errors import Conflict, Unavailable

if TYPE_CHECKING:
    from owaction.store.records import ExecutionRecord


class StoreUnavailable(Unavailable):
    """The database cannot be used right now (down, refused, timed out, no free session)."""

    code = "database_unavailable"


class DuplicateIdempotencyKey(Conflict):
    """``create_pending`` found an execution with the same caller and idempotency key."""

    code = "idempotency_key_exists"

    def __init__(self, existing: ExecutionRecord):
        super().__init__(
            "an execution with this idempotency key already exists",
            execution_id=existing.execution_id,
        )
        self.existing = existing
