"""New identifiers: the format ids always had, time-ordered, unguessable."""

from __future__ import annotations

import re
import time

from owaction.ids import new_id


def test_an_id_is_32_lowercase_hex_characters_starting_with_its_millisecond():
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert before <= int(made[:12], 16) <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones():
    earlier = new_id()
    time.sleep(0.002)
    later = [new_id() for _ in range(100)]
    assert all(earlier < one for one in later)


def test_the_random_part_differs_even_within_one_millisecond():
    made = [new_id() for _ in range(2000)]
    assert len({one[12:] for one in made}) == 2000
    assert len({one[:12] for one in made}) < 2000  # many shared a millisecond
