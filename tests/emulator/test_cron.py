"""Cron patterns of the alarms feed: fields, ranges, steps, names, and the next match."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from openwhisk_emulator.cron import Cron, CronError

NOW = datetime(2026, 12, 1, 22, 15, 7, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(("pattern", "expected"), [
    ("*/8 * * * * *", datetime(2026, 12, 1, 22, 15, 8, tzinfo=UTC)),
    ("* * * * * *", datetime(2026, 12, 1, 22, 15, 8, tzinfo=UTC)),
    ("*/5 * * * *", datetime(2026, 12, 1, 22, 20, tzinfo=UTC)),
    ("0 9 * * 1-5", datetime(2026, 12, 2, 9, 0, tzinfo=UTC)),
    ("30 2 * * SUN", datetime(2026, 12, 6, 2, 30, tzinfo=UTC)),
    ("0 0 29 2 *", datetime(2028, 2, 29, tzinfo=UTC)),
    ("0 12 1 jan *", datetime(2027, 1, 1, 12, tzinfo=UTC)),
    ("15,45 22 * * *", datetime(2026, 12, 1, 22, 45, tzinfo=UTC)),
    ("0 0 * * 7", datetime(2026, 12, 6, tzinfo=UTC)),
])
def test_next_match(pattern, expected):
    assert Cron.parse(pattern).next_after(NOW) == expected


def test_day_of_month_or_day_of_week_when_both_are_given():
    # The 10th, or any Wednesday: Wednesday 2 December comes first.
    assert Cron.parse("0 0 10 * 3").next_after(NOW) == datetime(2026, 12, 2, tzinfo=UTC)


@pytest.mark.parametrize("pattern", ["* * * *", "61 * * * *", "* * * * * * *", "a * * * *",
                                     "5-1 * * * *", "*/0 * * * *", "* * 0 * *"])
def test_bad_patterns(pattern):
    with pytest.raises(CronError):
        Cron.parse(pattern)


def test_seconds_granularity():
    assert Cron.parse("*/10 * * * * *").has_seconds
    assert not Cron.parse("* * * * *").has_seconds
    assert not Cron.parse("0 * * * * *").has_seconds
