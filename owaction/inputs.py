"""Free text from callers: the one rule every door's text meets before it reaches the store.

Names have their own rules (``owaction.names``); this covers the rest (router ids, session ids,
execution ids). Each rule is a pattern that Python, pydantic and ECMA-262 read alike, so the
OpenAPI document publishes what the service checks.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from owaction import errors
from owaction.names import MAX_NAME_LENGTH

# PostgreSQL text cannot hold NUL and SQLite's driver refuses a query containing it; a lone
# surrogate cannot be encoded for either. Nothing else in free text is refused.
TEXT_PATTERN = r"^[^\u0000]*$"
# Text that must say something (a command, a session id): not only ASCII white space.
_BLANK = " \t\n\r\f\v"
NON_BLANK_TEXT_PATTERN = r"^[^\u0000]*[^\u0000 \t\n\r\f\v][^\u0000]*$"
# What the store issues (32 hex characters) and what the original module's rows hold (a float
# timestamp as text).
EXECUTION_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_EXECUTION_ID = re.compile(EXECUTION_ID_PATTERN)

# The executions list's action_name filter: a package/action (or a webhook's name) or nothing.
MAX_ACTION_NAME_FILTER = 2 * MAX_NAME_LENGTH + 1

# The fields of a router #command and their longest values.
COMMAND_FIELD_LENGTHS = {"command": 256, "args": 4096, "user_id": 256, "entity_id": 256,
                         "community_id": 256, "session_id": 256, "message": 4096}


def check_text(value: object, what: str, max_length: int) -> str:
    """``value`` when it is text the store can hold, of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{what} must be a string")
    if len(value) > max_length:
        raise errors.InvalidInput(f"{what} must be at most {max_length} characters")
    if "\x00" in value:
        raise errors.InvalidInput(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InvalidInput(f"{what} is not valid Unicode (a lone surrogate)") from None
    return value


def is_blank(text: str) -> bool:
    return not text.strip(_BLANK)


def check_execution_id(value: object) -> str:
    if not isinstance(value, str) or not _EXECUTION_ID.fullmatch(value):
        raise errors.InvalidInput("execution_id must be 1-64 of [A-Za-z0-9._-]")
    return value


# --- instants (the executions list's since/until) -------------------------------------------------

# Epoch seconds, or an RFC 3339 date-time. Its year is 0002-9998, so that no offset can move it
# out of the years a datetime holds: 0001-01-01T00:00:00+01:00 has no UTC instant.
EPOCH_SECONDS_PATTERN = r"^[0-9]{1,11}$"
_YEAR = r"(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
DATE_TIME_PATTERN = (
    rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
INSTANT_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": EPOCH_SECONDS_PATTERN},
        {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN},
    ],
    "description": "epoch seconds, or an RFC 3339 date-time (years 0002-9998)",
}
_EPOCH = re.compile(EPOCH_SECONDS_PATTERN)
_DATE_TIME = re.compile(DATE_TIME_PATTERN)


def parse_instant(value: object, what: str) -> dt.datetime | None:
    """An aware UTC datetime from epoch seconds, RFC 3339 text or a datetime; None for None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        instant = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, str) and _EPOCH.fullmatch(value):
        instant = dt.datetime.fromtimestamp(int(value), dt.UTC)
    elif isinstance(value, str) and _DATE_TIME.fullmatch(value):
        text = value.upper().replace("Z", "+00:00")
        date_part, _, rest = text.partition("T")
        clock, offset = rest[:-6], rest[-6:]
        whole, _, fraction = clock.partition(".")
        if whole.endswith(":60"):  # a leap second: RFC 3339 has them, datetime does not
            whole = whole[:-2] + "59"
        try:
            instant = dt.datetime.fromisoformat(
                f"{date_part}T{whole}{'.' + fraction[:6].ljust(6, '0') if fraction else ''}"
                f"{offset}")
        except ValueError:
            raise errors.InvalidInput(f"{what} is not a real date and time") from None
    else:
        raise errors.InvalidInput(
            f"{what} must be epoch seconds or an RFC 3339 date-time in the years 0002-9998, "
            "e.g. 2026-01-30T12:00:00Z")
    try:
        return instant.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise errors.InvalidInput(f"{what} is out of range") from None


# --- callback URLs --------------------------------------------------------------------------------


def callback_url_pattern(allowed_hosts: tuple[str, ...]) -> str:
    """The callback URLs the operator allows (CALLBACK_ALLOWED_HOSTS), as one pattern: http(s),
    an allowed host (any case), an optional port, then visible ASCII; "" means none."""
    hosts = "|".join(_caseless(host) for host in allowed_hosts if host)
    if not hosts:
        return "^$"
    return rf"^$|^[Hh][Tt][Tt][Pp][Ss]?://({hosts})(:[0-9]{{1,5}})?([/?#][!-~]*)?$"


@functools.lru_cache(maxsize=8)
def callback_url_re(allowed_hosts: tuple[str, ...]) -> re.Pattern:
    return re.compile(callback_url_pattern(allowed_hosts))


def _caseless(host: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else
                   (f"\\{c}" if c in ".[]" else c) for c in host)
