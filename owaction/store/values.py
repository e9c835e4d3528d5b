"""How Python values are written to and read back from the executions table."""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Any


def now() -> dt.datetime:
    """Naive UTC, whole seconds: the precision PyDAL stores a datetime with."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


def sql_time(value: dt.datetime) -> str:
    """A datetime as PyDAL writes it; both engines compare it correctly with stored values."""
    return naive_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def sql_value(value: Any) -> Any:
    """A Python value as PyDAL stores it: booleans as 'T'/'F', times as UTC text."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, dt.datetime):
        return sql_time(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def read_bool(value: Any) -> bool | None:
    """A boolean column as read by plain SQL: PyDAL stores 'T' or 'F'."""
    if value is None or isinstance(value, bool):
        return value
    return value == "T"


def read_time(value: Any) -> dt.datetime | None:
    """A datetime column as read by plain SQL: SQLite gives back the text PyDAL wrote."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


def dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # A row written by something other than this store; show it rather than fail the read.
        return text
