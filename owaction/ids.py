"""New identifiers (executions, requests): 32 lowercase hex characters, time-ordered and
unguessable.

The first 12 characters are the milliseconds since the Unix epoch, the other 20 are 80 random bits
from the OS CSPRNG (UUIDv7's layout, in the format owaction's ids have always had). Ordered by
time, ids made one after another land next to each other in an index, at the right edge of its
B-tree, rather than each on a random page: a transaction dirties, writes and keeps in cache a few
pages rather than one per row for each such index. 80 random bits keep them unguessable from one
another.
"""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
