"""Third-party packages loaded without optional extras owaction never uses.

pybreaker imports redis, if installed, for a Redis-backed breaker state owaction does not use,
and redis in turn loads the OpenTelemetry SDK and psutil: a few megabytes of idle memory in
every REST worker and gRPC process. Importing pybreaker with redis hidden leaves redis free to
be imported later by whatever does use it (the rate limiter with ``REDIS_URL``).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def _hidden(*names: str) -> Iterator[None]:
    """While the block runs, ``import name`` raises ModuleNotFoundError (unless already loaded)."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment] - the import system's "not there"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


def import_without(module: str, *optional: str) -> ModuleType:
    """``module``, imported (on first use) as if the ``optional`` packages were not installed."""
    if module in sys.modules:
        return sys.modules[module]
    with _hidden(*optional):
        return importlib.import_module(module)


pybreaker = import_without("pybreaker", "redis")
