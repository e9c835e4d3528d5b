"""The HTTP layer under the OpenWhisk client: pooled sessions, stale keep-alive connections,
backoff, and the one place where ``requests``/``urllib3`` exceptions become client errors."""

from __future__ import annotations

import functools
import logging
import select
import sys
import time
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
)

from owaction.openwhisk.errors import (
    ConnectFailed,
    ConnectionDropped,
    RequestTimedOut,
    TransportError,
)

log = logging.getLogger("owaction.openwhisk")

# nginx, OpenWhisk's edge, closes idle keep-alive connections after 65 s; reusing one just as it
# does so sends a POST into a closing socket. Discarding connections idle for well under that
# avoids the race instead of retrying a POST that may already have run an action.
DEFAULT_KEEPALIVE_IDLE = 20.0


def _os_poll():
    """The operating system's ``select.poll``, even where gevent has patched ``select``."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("select"):
        return monkey.get_original("select", "poll")
    return select.poll


class _CheapLivenessCheck:
    """Mixin for urllib3 connections: the check before a pooled connection is reused (has the
    server closed it?) polls the socket once with the operating system's poll.

    urllib3 asks ``select.poll`` with a zero timeout; under gevent that is gevent's cooperative
    poll, which sets up and tears down loop watchers every time, about 10 us against 1 us. A
    zero timeout never blocks, so the plain system call is safe on the gevent hub.
    """

    _poll = None

    @property
    def is_connected(self) -> bool:
        sock = self.sock
        if sock is None:
            return False
        poll_class = _CheapLivenessCheck._poll
        if poll_class is None:
            poll_class = _CheapLivenessCheck._poll = _os_poll()
        poller = poll_class()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)  # readable (EOF, or bytes nobody asked for): not reusable


class _Connection(_CheapLivenessCheck, HTTPConnection):
    pass


class _TLSConnection(_CheapLivenessCheck, HTTPSConnection):
    pass


class _IdleDiscardingPool:
    """Mixin for urllib3 pools: a connection idle longer than ``keepalive_idle`` seconds is
    closed before reuse, so the request opens a fresh connection instead."""

    keepalive_idle: float

    def __init__(self, *args: Any, keepalive_idle: float = DEFAULT_KEEPALIVE_IDLE, **kw: Any):
        self.keepalive_idle = keepalive_idle
        super().__init__(*args, **kw)

    def _get_conn(self, timeout: float | None = None):
        conn = super()._get_conn(timeout)
        released_at = getattr(conn, "owaction_released_at", None)
        if released_at is not None and time.monotonic() - released_at > self.keepalive_idle:
            log.debug("discarding a keep-alive connection idle for more than %ss",
                      self.keepalive_idle)
            # A closed urllib3 connection reconnects on its next request.
            conn.close()
            conn.owaction_released_at = None
        return conn

    def _put_conn(self, conn) -> None:
        if conn is not None:
            conn.owaction_released_at = time.monotonic()
        super()._put_conn(conn)


class IdleDiscardingHTTPConnectionPool(_IdleDiscardingPool, HTTPConnectionPool):
    ConnectionCls = _Connection


class IdleDiscardingHTTPSConnectionPool(_IdleDiscardingPool, HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class QuietInsecureHTTPSConnectionPool(IdleDiscardingHTTPSConnectionPool):
    """For ``OPENWHISK_INSECURE=true``: the client logs one warning when it is built, so
    urllib3's InsecureRequestWarning on every request is noise (and an error under pytest)."""

    def _validate_conn(self, conn) -> None:
        # HTTPSConnectionPool._validate_conn without its per-request warning.
        HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


class KeepAliveAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools discard connections idle longer than ``keepalive_idle``."""

    def __init__(self, *, keepalive_idle: float = DEFAULT_KEEPALIVE_IDLE,
                 quiet_insecure: bool = False, **kw: Any):
        # init_poolmanager runs inside HTTPAdapter.__init__, so these must be set first.
        self.keepalive_idle = keepalive_idle
        self.quiet_insecure = quiet_insecure
        super().__init__(**kw)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        https_pool = (QuietInsecureHTTPSConnectionPool if self.quiet_insecure
                      else IdleDiscardingHTTPSConnectionPool)
        self.poolmanager.pool_classes_by_scheme = {
            "http": functools.partial(IdleDiscardingHTTPConnectionPool,
                                      keepalive_idle=self.keepalive_idle),
            "https": functools.partial(https_pool, keepalive_idle=self.keepalive_idle),
        }


class NoCookies(DefaultCookiePolicy):
    """A cookie policy that stores and sends nothing: the session is shared by every caller of a
    process, so a cookie one web action sets must never reach the next caller's call."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


def make_session(*, pool_size: int = 200, keepalive_idle: float = DEFAULT_KEEPALIVE_IDLE,
                 quiet_insecure: bool = False, api_host: str | None = None) -> requests.Session:
    """A session whose pool holds ``pool_size`` connections per host and never blocks.

    urllib3's default of 10 would make a gevent worker with hundreds of greenlets open and
    throw away a connection per call; ``pool_block=False`` opens extra connections rather than
    queueing callers when the pool is exhausted.

    The environment's proxy settings are read once, here: with ``trust_env`` requests would
    read and parse every ``*_PROXY`` variable again on every call.
    """
    session = requests.Session()
    if api_host:
        session.proxies = requests.utils.get_environ_proxies(api_host)
    session.trust_env = False
    session.cookies.set_policy(NoCookies())
    adapter = KeepAliveAdapter(
        keepalive_idle=keepalive_idle,
        quiet_insecure=quiet_insecure,
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        pool_block=False,
        # Retries are decided by the client, which knows whether repeating is harmless.
        max_retries=0,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _chain(exc: BaseException):
    """The exception and everything it wraps (args, reason, cause, context)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        stack.extend(e for e in linked if isinstance(e, BaseException))


def _timed_out(error: TransportError) -> TransportError:
    error.timed_out = True
    return error


def translate(exc: requests.RequestException, what: str) -> TransportError:
    """The client error for a ``requests`` exception; the caller raises it ``from exc``."""
    if isinstance(exc, requests.ConnectTimeout):
        return _timed_out(ConnectFailed(f"{what}: connecting to OpenWhisk timed out"))
    if isinstance(exc, requests.ReadTimeout):
        return RequestTimedOut(f"{what}: OpenWhisk did not answer within the read timeout")
    if isinstance(exc, requests.exceptions.SSLError):
        # The TLS handshake failed, so no HTTP request was sent.
        return ConnectFailed(f"{what}: TLS handshake with OpenWhisk failed: {exc}")
    if isinstance(exc, requests.exceptions.ProxyError):
        return ConnectFailed(f"{what}: the proxy to OpenWhisk failed: {exc}")
    causes = list(_chain(exc))
    if any(isinstance(c, ConnectTimeoutError) for c in causes):
        return _timed_out(ConnectFailed(f"{what}: connecting to OpenWhisk timed out"))
    if any(isinstance(c, NewConnectionError) for c in causes):
        return ConnectFailed(f"{what}: cannot connect to OpenWhisk")
    if any(isinstance(c, ReadTimeoutError) for c in causes):
        return RequestTimedOut(f"{what}: OpenWhisk did not answer within the read timeout")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError
                  | requests.exceptions.ContentDecodingError):
        return ConnectionDropped(
            f"{what}: the connection to OpenWhisk broke before the answer was complete"
        )
    # Anything else happened somewhere between sending and receiving: assume it was sent.
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


