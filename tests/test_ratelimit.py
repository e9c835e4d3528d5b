"""The rate limiter on its own: token buckets in process and in a real Redis, and what each scope
does while Redis is unreachable."""

from __future__ import annotations

import secrets
import uuid

import pytest

from owaction.config import load_settings
from owaction.errors import Throttled
from owaction.ratelimit import RateLimiter, parse_limit
from tests.procs import free_port

REDIS = "redis://127.0.0.1:6379/15"


def limiter(clock=None, **env) -> RateLimiter:
    """A limiter with a fresh key prefix, so no earlier run's buckets count."""
    settings = load_settings({"MODULE_SECRET_KEY": secrets.token_urlsafe(48),
                              "MODULE_NAME": f"rl-{uuid.uuid4().hex[:8]}", **env})
    return RateLimiter(settings, clock=clock) if clock else RateLimiter(settings)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_parse_limit():
    assert parse_limit("600/minute").amount == 600
    assert parse_limit("5 / second").seconds == 1
    assert parse_limit("") is None
    with pytest.raises(ValueError):
        parse_limit("600 per minute")


@pytest.mark.parametrize("redis_url", ["", REDIS])
def test_a_bucket_refills_at_its_rate(redis_url):
    clock = Clock()
    rl = limiter(clock, REDIS_URL=redis_url, RATE_LIMIT_CALLER="2/minute")
    rl.check_invocation("svc", "a")
    rl.check_invocation("svc", "b")
    with pytest.raises(Throttled) as info:
        rl.check_invocation("svc", "c")
    assert info.value.retry_after == 30  # one token comes back every 30 s
    rl.check_invocation("other", "a")  # each caller has its own bucket
    clock.now += 31
    rl.check_invocation("svc", "d")
    with pytest.raises(Throttled):
        rl.check_invocation("svc", "e")


@pytest.mark.parametrize("redis_url", ["", REDIS])
def test_a_refund_gives_one_token_back_and_never_more_than_the_limit(redis_url):
    clock = Clock()
    rl = limiter(clock, REDIS_URL=redis_url, RATE_LIMIT_CALLER="2/minute")
    rl.refund_invocation("svc", "a")  # a full bucket stays full
    rl.check_invocation("svc", "a")
    rl.check_invocation("svc", "b")
    rl.refund_invocation("svc", "b")  # b was a replay
    rl.check_invocation("svc", "c")
    with pytest.raises(Throttled):
        rl.check_invocation("svc", "d")


def test_buckets_in_redis_are_shared_by_limiters():
    env = {"REDIS_URL": REDIS, "RATE_LIMIT_ACTION": "3/hour",
           "MODULE_NAME": f"rl-{uuid.uuid4().hex[:8]}"}
    settings = load_settings({"MODULE_SECRET_KEY": secrets.token_urlsafe(48), **env})
    one, two = RateLimiter(settings), RateLimiter(settings)
    one.check_invocation("a", "act")
    two.check_invocation("b", "act")
    one.check_invocation("c", "act")
    with pytest.raises(Throttled):
        two.check_invocation("d", "act")


def test_redis_down_lets_invocations_through_and_counts_tokens_locally():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    rl = limiter(REDIS_URL=dead, RATE_LIMIT_CALLER="1/minute", RATE_LIMIT_TOKEN="2/minute")
    for _ in range(5):
        rl.check_invocation("svc", "act")  # fail open: far over the caller's limit
    rl.check_token_request("10.0.0.1")
    rl.check_token_request("10.0.0.1")
    with pytest.raises(Throttled):
        rl.check_token_request("10.0.0.1")  # fail closed, per process
    rl.check_token_request("10.0.0.2")


def test_an_empty_limit_is_no_limit():
    rl = limiter(RATE_LIMIT_TOKEN="1/minute")
    rl.token_limit = parse_limit("")
    for _ in range(3):
        rl.check_token_request("10.0.0.1")


class _Unprintable:
    """A key whose text cannot be made: a bug in the caller, not a storage failure."""

    def __str__(self) -> str:
        raise ValueError("no text for this key")

    __format__ = lambda self, spec: str(self)  # noqa: E731


def test_a_bug_is_raised_not_taken_for_a_redis_outage():
    rl = limiter(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_CALLER="2/minute")
    with pytest.raises(ValueError, match="no text for this key"):
        rl.check_invocation(_Unprintable(), "hello")
    # A real outage still falls back: invocations pass while Redis is unreachable.
    rl.check_invocation("caller", "hello")
