"""The pinned grpcio is the one owaction.rpc.initial_metadata was written against: if an upgrade
changes its internals, this fails instead of the door silently paying for a batch per call
again (the behaviour itself is tested end to end in test_rpcs.py)."""

from __future__ import annotations

from owaction.rpc import initial_metadata


def test_initial_metadata_goes_with_the_reply_on_the_pinned_grpcio():
    assert initial_metadata.install() is True
    assert initial_metadata.install() is True  # once only, and idempotent
