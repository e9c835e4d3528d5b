"""Retry delays: capped exponential backoff, and jitter so retrying clients spread out."""

from __future__ import annotations

import random

# 2 ** 62 times any sane first delay is past every cap; a larger exponent would not be a float.
_MAX_EXPONENT = 62


def exponential(attempt: int, *, first: float, cap: float) -> float:
    """The delay before retry ``attempt`` (1, 2, ...): ``first``, doubling, at most ``cap``."""
    return min(cap, first * 2 ** min(max(0, attempt - 1), _MAX_EXPONENT))


def full_jitter(delay: float) -> float:
    """A random delay in [delay/2, delay], so retrying clients do not move in lockstep."""
    return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not security
