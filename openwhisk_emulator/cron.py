"""Cron patterns as the alarms package reads them: 5 fields, or 6 with seconds first (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (low, high, names whose index + low is the value)
_FIELDS = {
    "second": (0, 59, ()),
    "minute": (0, 59, ()),
    "hour": (0, 23, ()),
    "day": (1, 31, ()),
    "month": (1, 12, MONTHS),
    "weekday": (0, 7, DAYS),
}
# How far ahead a pattern may have its next match (29 February of a leap year, at worst).
_HORIZON_DAYS = 366 * 8


class CronError(ValueError):
    pass


def _value(text: str, field: str) -> int:
    low, high, names = _FIELDS[field]
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + (1 if field == "month" else 0)
    if not text.isdigit():
        raise CronError(f"'{text}' is not a {field}")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field} {number} is outside {low}-{high}")
    return number


def _field(text: str, field: str) -> frozenset[int]:
    low, high, _ = _FIELDS[field]
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CronError(f"'{part}' has a bad step")
        if span in ("*", "?"):
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = _value(first, field), _value(last, field)
            if start > end:
                raise CronError(f"'{span}' is a backwards range")
        else:
            start = _value(span, field)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    if field == "weekday" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, pattern: str) -> Cron:
        parts = str(pattern).split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise CronError("a cron pattern has 5 or 6 fields")
        names = ("second", "minute", "hour", "day", "month", "weekday")
        sets = [_field(text, name) for text, name in zip(parts, names, strict=True)]
        return cls(*sets, any_day=parts[3] in ("*", "?"), any_weekday=parts[5] in ("*", "?"))

    @property
    def has_seconds(self) -> bool:
        return self.seconds != frozenset({0})

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        # As in cron: with both restricted, either one matching is enough.
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def next_after(self, moment: datetime) -> datetime | None:
        """The first matching second strictly after ``moment`` (UTC), None if there is none."""
        moment = moment.astimezone(UTC).replace(microsecond=0)
        day = moment.replace(hour=0, minute=0, second=0)
        for _ in range(_HORIZON_DAYS):
            today = day.date() == moment.date()
            if self._day_matches(day):
                for hour in sorted(h for h in self.hours if not today or h >= moment.hour):
                    for minute in sorted(self.minutes):
                        if today and hour == moment.hour and minute < moment.minute:
                            continue
                        for second in sorted(self.seconds):
                            candidate = day.replace(hour=hour, minute=minute, second=second)
                            if candidate > moment:
                                return candidate
            day += timedelta(days=1)
        return None
