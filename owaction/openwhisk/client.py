"""OpenWhiskClient: the module's only way to talk to OpenWhisk's REST API.

Every call checks its names before anything is sent, percent-encodes each path segment, sends
explicit (connect, read) timeouts, and returns a typed model from ``models`` or raises an error
from ``errors``. A POST is sent once (unless the connection was refused before anything left);
GETs of the API are retried on connection errors and 502/503/504 with capped, jittered backoff.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from owaction import __version__, names
from owaction.backoff import exponential, full_jitter
from owaction.names import path_segment
from owaction.openwhisk.breaker import make_breaker
from owaction.openwhisk.errors import (
    BadGateway,
    CircuitOpen,
    HTTPStatusError,
    InvalidName,
    InvalidRequest,
    TransportError,
    WebActionAuthRequired,
    error_for_status,
)
from owaction.openwhisk.models import (
    ActionInfo,
    ActionResult,
    Activation,
    ActivationPending,
    TriggerFired,
    WebActionResponse,
)
from owaction.openwhisk.transport import (
    DEFAULT_KEEPALIVE_IDLE,
    make_session,
    translate,
)
from owaction.openwhisk.webauth import REQUIRE_WHISK_AUTH, WebActionAuth
from owaction.optional_imports import pybreaker

log = logging.getLogger("owaction.openwhisk")

ACTIVATION_ID_HEADER = "x-openwhisk-activation-id"
RETRY_STATUSES = frozenset({502, 503, 504})
WEB_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
WEB_EXTENSIONS = frozenset({"", ".http", ".json", ".html", ".svg", ".text"})
# OpenWhisk's answer when a web action is called with no extension.
DEFAULT_WEB_EXTENSION = ".http"
# Hop-by-hop and framing headers describe the module's own connection to OpenWhisk, so a
# caller's would at best be ignored and at worst frame the request wrongly (Transfer-Encoding
# beside Content-Length): they are refused. Names are lower-case; any ``proxy-*`` too.
RESERVED_WEB_HEADERS = frozenset({
    "host", "connection", "keep-alive", "transfer-encoding", "content-length", "te",
    "trailer", "upgrade", "expect",
})
# Time OpenWhisk needs past its blocking wait to send the 202 that says "still running".
BLOCKING_MARGIN = 5.0
# Under a caller's deadline the margin must be small, or short deadlines leave no wait at all.
DEADLINE_MARGIN = 0.25

_FROM_SETTINGS = object()


class _CountedFailure(Exception):
    """Replayed into the circuit breaker to record one failed call."""


@functools.cache
def _warn_insecure(api_host: str) -> None:
    log.warning("TLS certificate verification is OFF for OpenWhisk at %s "
                "(OPENWHISK_INSECURE=true); use OPENWHISK_CA_BUNDLE instead", api_host)


def _checked(check: Callable[..., Any]) -> Callable[..., Any]:
    """A name check from ``owaction.names`` raising this client's InvalidName."""

    @functools.wraps(check)
    def wrapper(*args: Any) -> Any:
        try:
            return check(*args)
        except names.InvalidName as exc:
            raise InvalidName(str(exc)) from None

    return wrapper


check_name = _checked(names.check_name)
check_namespace = _checked(names.check_namespace)
check_activation_id = _checked(names.check_activation_id)
split_action = _checked(names.split_action)
split_system_path = _checked(names.split_system_path)
SYSTEM_NAMESPACE = names.SYSTEM_NAMESPACE


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_error(response: requests.Response, what: str) -> HTTPStatusError:
    """The client error for an error status, with OpenWhisk's message and transaction id."""
    body = _json(response)
    message = None
    request_id = response.headers.get("X-Request-ID")
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            message = body["error"]
        if isinstance(body.get("code"), str | int):
            request_id = str(body["code"])
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:300]
    if message is None:
        text = response.text.strip() if body is None else ""
        message = text[:300] or f"HTTP {response.status_code} {response.reason or ''}".strip()
    cls = error_for_status(response.status_code)
    return cls(
        message,
        status_code=response.status_code,
        request_id=request_id,
        body=body if body is not None else response.text[:2000],
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def unexpected_answer(response: requests.Response, what: str) -> HTTPStatusError:
    """A success status with a body OpenWhisk never sends: reported as a bad gateway."""
    return BadGateway(
        f"{what}: OpenWhisk answered {response.status_code} with an unexpected body",
        status_code=502, request_id=response.headers.get("X-Request-ID"),
        body=response.text[:2000],
    )


def answer_error(response: requests.Response, what: str) -> HTTPStatusError:
    if response.status_code < 400:
        return unexpected_answer(response, what)
    return status_error(response, what)


def _is_activation(body: Any) -> bool:
    return isinstance(body, dict) and "activationId" in body and "response" in body


def reserved_header(name: str) -> bool:
    """Whether a web-action header is the module's to send, never a caller's."""
    lowered = name.lower()
    return lowered in RESERVED_WEB_HEADERS or lowered.startswith("proxy-")


def _web_failure(response: requests.Response) -> bool:
    # A web action's own 5xx carries its activation id; a 5xx without one is OpenWhisk's.
    return response.status_code >= 500 and ACTIVATION_ID_HEADER not in response.headers


def _invoke_failure(response: requests.Response) -> bool:
    if response.status_code < 500:
        return False
    if response.status_code == 502:
        body = _json(response)
        # An action that ran and failed is not OpenWhisk failing.
        return not (_is_activation(body) or isinstance(body, list)
                    or ACTIVATION_ID_HEADER in response.headers)
    return True


def _server_failure(response: requests.Response) -> bool:
    return response.status_code >= 500


def _epoch_ms(value: int | float | datetime | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _flag(value: bool) -> str:
    return "true" if value else "false"


# Prepared URLs (an action's name with its query) a client remembers.
_PREPARED_URLS = 1024


class OpenWhiskClient:
    """A client for one OpenWhisk API host and credentials; safe to share between threads
    and greenlets."""

    def __init__(
        self,
        *,
        api_host: str,
        auth_key: str,
        namespace: str = "guest",
        session: requests.Session | None = None,
        pool_size: int = 200,
        connect_timeout: float = 5.0,
        read_timeout: float = 70.0,
        blocking_wait_ms: int = 60000,
        verify: bool | str = True,
        get_retries: int = 3,
        keepalive_idle: float = DEFAULT_KEEPALIVE_IDLE,
        breaker: pybreaker.CircuitBreaker | None = None,
        web_auth: WebActionAuth | None = None,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        jitter: Callable[[float], float] = full_jitter,
        sleep: Callable[[float], None] = time.sleep,
        blocking_margin: float = BLOCKING_MARGIN,
        apigw_token: str = "",
    ):
        user, sep, key = auth_key.partition(":")
        if not sep or not user or not key:
            raise ValueError("auth_key must have the form uuid:key")
        self.api_host = api_host.rstrip("/")
        self.namespace = check_namespace(namespace)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.blocking_wait_ms = blocking_wait_ms
        self.blocking_margin = blocking_margin
        self.verify = verify
        self.get_retries = max(0, get_retries)
        self.keepalive_idle = keepalive_idle
        self.breaker = breaker
        self.web_auth = web_auth or WebActionAuth()
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.sleep = sleep
        self._auth = (user, key)
        self._apigw_token = apigw_token
        self._owns_session = session is None
        self._session = session or make_session(
            pool_size=pool_size, keepalive_idle=keepalive_idle, quiet_insecure=verify is False,
            api_host=self.api_host,
        )
        # With trust_env off, proxies and verify do not depend on the URL: merged once.
        self._send_settings = (None if self._session.trust_env else
                               self._session.merge_environment_settings(
                                   self.api_host, {}, None, verify, None))
        credentials = f"{user}:{key}"
        try:
            raw = credentials.encode("latin-1")  # what requests' Basic auth sends
        except UnicodeEncodeError:
            raw = credentials.encode("utf-8")
        self._basic = "Basic " + base64.b64encode(raw).decode("ascii")
        self._probe_lock = threading.Lock()
        # The session's headers and ours, as requests prepares them: the same for every call.
        scratch = requests.PreparedRequest()
        scratch.prepare_headers({**{k: v for k, v in self._session.headers.items()
                                    if v is not None}, "User-Agent": f"owaction/{__version__}"})
        self._base_headers = scratch.headers
        self._urls: dict[Any, str] = {}
        if verify is False:
            _warn_insecure(self.api_host)

    @classmethod
    def from_settings(cls, settings: Any, *, session: requests.Session | None = None,
                      breaker: Any = _FROM_SETTINGS) -> OpenWhiskClient:
        """A client configured from ``Settings``; a circuit breaker unless ``breaker=None``."""
        if breaker is _FROM_SETTINGS:
            breaker = make_breaker(settings)
        return cls(
            api_host=settings.openwhisk_api_host,
            auth_key=settings.openwhisk_auth_key,
            namespace=settings.openwhisk_namespace,
            session=session,
            pool_size=settings.openwhisk_pool_size,
            connect_timeout=settings.openwhisk_connect_timeout,
            read_timeout=settings.request_timeout,
            blocking_wait_ms=settings.openwhisk_blocking_wait_ms,
            verify=settings.openwhisk_verify,
            get_retries=settings.openwhisk_get_retries,
            keepalive_idle=settings.openwhisk_keepalive_idle,
            breaker=breaker,
            web_auth=WebActionAuth.build(settings.openwhisk_namespace,
                                         settings.web_action_secret_map.items(),
                                         settings.web_action_key_allowed),
            apigw_token=settings.openwhisk_apigw_token,
        )

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def warm_up(self) -> None:
        """Resolve the API host once, as the first call would, at a process's start: under
        gevent that starts the resolver's threads, so they count in the idle process and the
        first call does not wait for them. A failure here is the first call's to report."""
        parts = urlsplit(self.api_host)
        if not parts.hostname:
            return
        with contextlib.suppress(OSError, UnicodeError, ValueError):  # ValueError: a bad port
            port = parts.port or (443 if parts.scheme == "https" else 80)
            socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)

    def __enter__(self) -> OpenWhiskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- paths -------------------------------------------------------------------------------

    def _ns(self, namespace: str | None) -> str:
        return path_segment(check_namespace(namespace or self.namespace))

    def _collection(self, namespace: str | None, collection: str) -> str:
        return f"/api/v1/namespaces/{self._ns(namespace)}/{collection}"

    def _entity(self, namespace: str | None, collection: str, name: str, what: str) -> str:
        return f"{self._collection(namespace, collection)}/{path_segment(check_name(name, what))}"

    def _action_path(self, namespace: str | None, name: str) -> str:
        package, action = split_action(name)
        segments = [path_segment(action)] if package is None else [
            path_segment(package), path_segment(action)]
        return self._collection(namespace, "actions") + "/" + "/".join(segments)

    # --- the one way a request goes out --------------------------------------------------------

    def _headers(self, request_id: str | None, headers: dict[str, str] | None) -> dict[str, str]:
        out = {}  # the User-Agent is in the prepared base headers
        for name, value in (headers or {}).items():
            # http.client sends header text as Latin-1 and refuses control characters only
            # once connected: refused here, before anything is sent or counted.
            if not isinstance(name, str) or not isinstance(value, str) or not (
                    name + value).isascii() or any(ord(c) < 32 or ord(c) == 127
                                                   for c in name + value):
                raise InvalidName(f"header {name[:64]!r} is not a single line of ASCII")
            out[name] = value
        if request_id is not None:
            if not isinstance(request_id, str) or any(c in request_id for c in "\r\n\0"):
                raise InvalidName("request id must be a single-line string")
            out["X-Request-ID"] = request_id
        return out

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        wait_ms: int | None = None,
        json_body: Any = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
        idempotent: bool = False,
        is_failure: Callable[[requests.Response], bool] = _server_failure,
        send_key: bool = True,
        guarded: bool = True,
    ) -> requests.Response:
        """One logical call: a response of any status, or a TransportError.

        Retries a connection refused before anything was sent, for any method, and (when
        ``idempotent``) dropped connections, timeouts and 502/503/504, within the read timeout
        the caller gave. ``send_key`` False sends no credentials; ``guarded`` False keeps the
        call outside the circuit breaker (neither refused by it nor counted). ``wait_ms`` is a
        blocking invoke's wait (OpenWhisk's ``timeout``), last in the query.
        """
        prepared = self._prepare(method, self.api_host + path, what=what, params=params,
                                 wait_ms=wait_ms, json_body=json_body,
                                 headers=self._headers(request_id, headers), send_key=send_key)
        deadline = None if read_timeout is None else time.monotonic() + read_timeout
        attempt = 0
        while True:
            if deadline is None:
                timeout = (self.connect_timeout, self.read_timeout)
            else:
                # A caller's deadline bounds connecting and every retry too.
                remaining = max(0.001, deadline - time.monotonic())
                timeout = (min(self.connect_timeout, remaining), remaining)
            try:
                response = self._attempt(prepared, what=what, timeout=timeout,
                                         is_failure=is_failure, guarded=guarded)
            except CircuitOpen:
                raise
            except TransportError as exc:
                # Repeating is harmless for a read, or when nothing reached OpenWhisk.
                harmless = idempotent or not exc.request_sent
                if not harmless or attempt >= self.get_retries:
                    raise
                attempt += 1
                if not self._pause(attempt, deadline, what, exc):
                    raise
                continue
            if (idempotent and response.status_code in RETRY_STATUSES
                    and attempt < self.get_retries):
                attempt += 1
                if self._pause(attempt, deadline, what, f"HTTP {response.status_code}"):
                    response.close()
                    continue
            return response

    def _pause(self, attempt: int, deadline: float | None, what: str, why: object) -> bool:
        """Sleep before retry ``attempt``; False when that would pass the caller's deadline."""
        delay = self.jitter(exponential(attempt, first=self.backoff_base, cap=self.backoff_max))
        if deadline is not None and time.monotonic() + delay >= deadline:
            return False
        log.info("%s: retry %d/%d in %.2fs after %s", what, attempt, self.get_retries, delay, why)
        self.sleep(delay)
        return True

    def _prepare(self, method: str, url: str, *, what: str, params, json_body, headers,
                 send_key: bool, wait_ms: int | None = None) -> requests.PreparedRequest:
        """The request as it goes out, built once for every attempt. What cannot be encoded
        (NaN in JSON, text a URL cannot hold) is the caller's error: raised before anything
        is sent, and never counted as OpenWhisk failing."""
        # Built directly rather than by Session.prepare_request, which per call copies and
        # merges two cookie jars (the session's stores none: NoCookies), merges the headers and
        # encodes the Basic credentials again. What repeats from call to call (the session's
        # headers with the credentials, the URL of an action with its query) is prepared by
        # requests once and kept; only this call's own headers and body are new.
        prepared = requests.PreparedRequest()
        prepared.method = method.upper()
        try:
            prepared.url = self._prepared_url(url, params, wait_ms)
            merged = self._base_headers.copy()
            for name, value in headers.items():
                if value is not None:
                    requests.utils.check_header_validity((name, value))
                    merged[name] = value
            if send_key:
                merged["Authorization"] = self._basic  # over any given, as requests' auth
            prepared.headers = merged
            prepared.prepare_body(None, None, json_body)  # requests' own JSON encoding
            return prepared
        except (requests.RequestException, ValueError) as exc:
            raise InvalidRequest(f"{what}: the request cannot be sent as given: {exc}") from None

    def _prepared_url(self, url: str, params, wait_ms: int | None = None) -> str:
        """``url`` with ``params`` as requests encodes them, remembered for the next call, then
        ``timeout=wait_ms``: the blocking wait follows each caller's deadline, so it differs from
        call to call and is appended to what is remembered (a number needs no encoding)."""
        found = self._remembered_url(url, params)
        if wait_ms is None:
            return found
        return f"{found}{'&' if '?' in found else '?'}timeout={int(wait_ms)}"

    def _remembered_url(self, url: str, params) -> str:
        key = (url, tuple(params.items())) if params else url
        try:
            found = self._urls.get(key)
        except TypeError:  # a list among the values: prepared every time
            key, found = None, None
        if found is None:
            scratch = requests.PreparedRequest()
            scratch.prepare_url(url, params)
            found = scratch.url
            if key is not None:
                if len(self._urls) >= _PREPARED_URLS:
                    self._urls.clear()  # many distinct names: start over rather than grow
                self._urls[key] = found
        return found

    def _attempt(self, prepared: requests.PreparedRequest, *, what: str, timeout,
                 is_failure: Callable[[requests.Response], bool],
                 guarded: bool = True) -> requests.Response:
        probing = self._admit(what) if guarded else False
        try:
            settings = self._send_settings or self._session.merge_environment_settings(
                prepared.url, {}, None, self.verify, None)
            try:
                response = self._session.send(prepared.copy(), timeout=timeout,
                                              allow_redirects=False, **settings)
            except requests.RequestException as exc:
                error = translate(exc, what)
                if guarded:
                    self._record(failed=self._counts(error, timeout))
                raise error from exc
            if guarded:
                self._record(failed=is_failure(response))
            return response
        finally:
            if probing:
                self._probe_lock.release()

    def _counts(self, error: TransportError, timeout: tuple[float, float]) -> bool:
        """Whether a transport failure is OpenWhisk's: a timeout counts only when the time
        allowed was at least the connect timeout, since a caller's short deadline is not
        OpenWhisk failing."""
        return not error.timed_out or min(timeout) >= self.connect_timeout

    # --- circuit breaker ------------------------------------------------------------------------
    #
    # pybreaker's ``call`` holds the breaker's lock for the whole guarded call, which would let
    # one request through at a time. So the request runs outside it, and its outcome is replayed
    # into the breaker afterwards through ``call`` so that pybreaker's own state machine (counts,
    # opening, half-open trial, listeners) decides.

    def _admit(self, what: str) -> bool:
        """Raise CircuitOpen while the breaker is open; True when this call is the one probe."""
        breaker = self.breaker
        if breaker is None or breaker.current_state == pybreaker.STATE_CLOSED:
            return False
        remaining = self._open_for()
        if breaker.current_state == pybreaker.STATE_OPEN and remaining > 0:
            raise CircuitOpen(f"{what}: OpenWhisk is failing; the circuit breaker is open",
                              retry_after=remaining)
        if not self._probe_lock.acquire(blocking=False):
            raise CircuitOpen(f"{what}: OpenWhisk is failing; a probe is in flight",
                              retry_after=1.0)
        return True

    def _open_for(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        breaker = self.breaker
        # pybreaker keeps the opening time only in its storage object.
        opened_at = getattr(getattr(breaker, "_state_storage", None), "opened_at", None)
        if opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, breaker.reset_timeout - elapsed)

    def _record(self, *, failed: bool) -> None:
        breaker = self.breaker
        if breaker is None:
            return

        def outcome() -> None:
            if failed:
                raise _CountedFailure

        try:
            breaker.call(outcome)
        except (_CountedFailure, pybreaker.CircuitBreakerError):
            # The outcome is recorded; the caller gets the real answer or error, not these.
            pass

    # --- invoking ------------------------------------------------------------------------------

    def invoke_action(
        self,
        name: str,
        payload: dict | None = None,
        *,
        namespace: str | None = None,
        blocking: bool = True,
        result: bool = False,
        timeout_ms: int | None = None,
        request_id: str | None = None,
        read_timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Activation | ActivationPending | ActionResult:
        """Invoke an action (or sequence); an action that ran and failed is an Activation
        (or ActionResult) with ``success`` False, not an exception."""
        path = self._action_path(namespace, name)
        params = {"blocking": _flag(blocking), "result": _flag(result)}
        if blocking:
            wait_ms = timeout_ms or self.blocking_wait_ms
            if read_timeout is not None:
                # Ask OpenWhisk to give up waiting (202) just before our caller gives up on us.
                wait_ms = min(wait_ms, max(1, int((read_timeout - DEADLINE_MARGIN) * 1000)))
            else:
                read_timeout = max(self.read_timeout, wait_ms / 1000 + self.blocking_margin)
        else:
            wait_ms = None
        response = self._request(
            "POST", path, what=f"invoke {name}", params=params, wait_ms=wait_ms,
            json_body=payload if payload is not None else {}, request_id=request_id,
            headers=headers, read_timeout=read_timeout, is_failure=_invoke_failure,
        )
        return self._invoke_outcome(response, name=name, blocking=blocking)

    def _invoke_outcome(self, response: requests.Response, *, name: str,
                        blocking: bool) -> Activation | ActivationPending | ActionResult:
        status = response.status_code
        header_id = response.headers.get(ACTIVATION_ID_HEADER)
        body = _json(response)
        if status == 202:
            activation_id = body.get("activationId") if isinstance(body, dict) else None
            activation_id = activation_id or header_id
            if not activation_id:
                raise answer_error(response, f"invoke {name}")
            return ActivationPending(activation_id, demoted=blocking)
        if status in (200, 500, 502):
            if _is_activation(body):
                return Activation.from_json(body)
            # result=true bodies, and array results (sent bare whatever ``result`` says). A
            # 500/502 without an activation id is OpenWhisk's own error, not the action's.
            if (isinstance(body, list) or status == 200 or header_id) and body is not None:
                return ActionResult(header_id or "", body, success=status == 200)
        raise answer_error(response, f"invoke {name}")

    def invoke_action_async(self, name: str, payload: dict | None = None, *,
                            namespace: str | None = None, request_id: str | None = None,
                            headers: dict[str, str] | None = None) -> ActivationPending:
        """Start an action without waiting; OpenWhisk's 202 with the activation id."""
        outcome = self.invoke_action(name, payload, namespace=namespace, blocking=False,
                                     request_id=request_id, headers=headers)
        if not isinstance(outcome, ActivationPending):
            raise BadGateway("OpenWhisk answered a non-blocking invoke with a result",
                             status_code=502)
        return outcome

    def invoke_sequence(self, name: str, payload: dict | None = None, *,
                        namespace: str | None = None, blocking: bool = True,
                        timeout_ms: int | None = None, **kw: Any,
                        ) -> Activation | ActivationPending | ActionResult:
        """A sequence is invoked exactly like an action."""
        return self.invoke_action(name, payload, namespace=namespace, blocking=blocking,
                                  timeout_ms=timeout_ms, **kw)

    def invoke_web_action(
        self,
        action: str,
        payload: dict | None = None,
        *,
        namespace: str | None = None,
        package: str = "default",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        extension: str = DEFAULT_WEB_EXTENSION,
        request_id: str | None = None,
        read_timeout: float | None = None,
    ) -> WebActionResponse:
        """Call a web action; whatever status the action answers is its answer. OpenWhisk's
        own refusals (no activation id: unknown action, require-whisk-auth, throttling) raise
        the HTTPStatusError for their status."""
        ns = namespace or self.namespace
        if ns == "_":
            raise InvalidName("web actions need an explicit namespace, not '_'")
        method = method.upper()
        if method not in WEB_METHODS:
            raise InvalidName(f"method {method!r} is not one of {sorted(WEB_METHODS)}")
        if extension not in WEB_EXTENSIONS:
            raise InvalidName(f"extension {extension!r} is not one of {sorted(WEB_EXTENSIONS)}")
        package_name, action_name = split_action(f"{package or 'default'}/{action}")
        if not extension and "." in action_name:
            # OpenWhisk would read the part after the dot as the extension.
            raise InvalidName(f"action {action_name!r} contains a dot: give an extension")
        path = (f"/api/v1/web/{self._ns(ns)}/{path_segment(package_name)}/"
                f"{path_segment(action_name)}{extension}")
        headers = dict(headers or {})
        for name in headers:
            if isinstance(name, str) and reserved_header(name):
                raise InvalidName(f"header {name!r} is the module's to send, not a caller's")
        secret = self.web_auth.secret_for(ns, package_name, action_name)
        if secret is not None:
            # The configured secret replaces whatever the caller sent under that name.
            headers = {k: v for k, v in headers.items()
                       if not (isinstance(k, str) and k.lower() == REQUIRE_WHISK_AUTH.lower())}
            headers[REQUIRE_WHISK_AUTH] = secret
        send_key = self.web_auth.may_send_key(ns, package_name, action_name)
        params = json_body = None
        if method in ("GET", "HEAD", "OPTIONS"):
            params = {k: v if isinstance(v, str) else _json_text(v)
                      for k, v in (payload or {}).items()}
        else:
            json_body = payload if payload is not None else {}
        what = f"web action {package_name}/{action_name}"
        # A web GET runs an action too, so it is never retried after it may have been sent.
        response = self._request(
            method, path, what=what, params=params, json_body=json_body, request_id=request_id,
            headers=headers, read_timeout=read_timeout, is_failure=_web_failure,
            send_key=send_key,
        )
        if response.status_code >= 400 and ACTIVATION_ID_HEADER not in response.headers:
            raise self._web_refusal(response, what, ns, package_name, action_name,
                                    secret is not None, send_key)
        return WebActionResponse(
            status_code=response.status_code,
            headers=dict(response.headers),
            body=response.content,
            activation_id=response.headers.get(ACTIVATION_ID_HEADER),
        )

    @staticmethod
    def _web_refusal(response: requests.Response, what: str, namespace: str, package: str,
                     action: str, had_secret: bool, had_key: bool) -> HTTPStatusError:
        """OpenWhisk's own error for a web action call it refused before running anything."""
        error = status_error(response, what)
        if response.status_code != 401:
            return error
        name = f"{namespace}/{package}/{action}"
        if had_key:
            why = "OpenWhisk refused the module's credentials"
        elif had_secret:
            why = f"the X-Require-Whisk-Auth secret configured for {name} does not match"
        else:
            why = (f"{name} requires authentication (require-whisk-auth): configure its "
                   "secret in WEB_ACTION_SECRETS, or allow it the namespace key in "
                   "WEB_ACTION_KEY_ALLOWED")
        return WebActionAuthRequired(f"{what}: {why}", status_code=401,
                                     request_id=error.request_id, body=error.body)

    def fire_trigger(self, name: str, payload: dict | None = None, *,
                     namespace: str | None = None, request_id: str | None = None,
                     headers: dict[str, str] | None = None) -> TriggerFired:
        """Fire a trigger; ``activation_id`` is None when no rule was active (204)."""
        path = self._entity(namespace, "triggers", name, "trigger name")
        response = self._request(
            "POST", path, what=f"fire {name}", json_body=payload if payload is not None else {},
            request_id=request_id, headers=headers,
        )
        if response.status_code == 204:
            return TriggerFired(None)
        if response.status_code in (200, 202):
            body = _json(response)
            activation_id = (body.get("activationId") if isinstance(body, dict) else None) or \
                response.headers.get(ACTIVATION_ID_HEADER)
            if activation_id:
                return TriggerFired(activation_id)
        raise answer_error(response, f"fire {name}")

    # --- reading ----------------------------------------------------------------------------------

    def _get(self, path: str, *, what: str, params: dict[str, Any] | None = None,
             request_id: str | None = None, headers: dict[str, str] | None = None,
             read_timeout: float | None = None, expect: type = dict,
             guarded: bool = True) -> Any:
        """The JSON body of a 200 answer, which must be an ``expect`` (a dict or a list)."""
        response = self._request("GET", path, what=what, params=params, request_id=request_id,
                                 headers=headers, read_timeout=read_timeout, idempotent=True,
                                 guarded=guarded)
        if response.status_code != 200:
            raise answer_error(response, what)
        body = _json(response)
        if not isinstance(body, expect):
            raise unexpected_answer(response, what)
        return body

    @staticmethod
    def _list_params(limit: int, skip: int, count: bool, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "skip": skip}
        if count:
            params["count"] = "true"
        params.update({k: v for k, v in extra.items() if v is not None})
        return params

    @staticmethod
    def _count(body: Any, key: str) -> int:
        if isinstance(body, dict) and isinstance(body.get(key), int):
            return body[key]
        raise BadGateway(f"OpenWhisk answered a count without {key!r}", status_code=502,
                         body=body)

    def info(self, *, timeout: float | None = None, guarded: bool = True) -> dict:
        """``GET /api/v1``: OpenWhisk's build information; a cheap reachability probe
        (``guarded=False``: outside the circuit breaker, as health checks are)."""
        return self._get("/api/v1", what="info", read_timeout=timeout, guarded=guarded)

    def list_actions(self, *, namespace: str | None = None, package: str | None = None,
                     limit: int = 30, skip: int = 0, count: bool = False,
                     request_id: str | None = None) -> list[ActionInfo] | int:
        """Actions of a namespace (packaged ones included) or of one package."""
        path = self._collection(namespace, "actions")
        if package is not None:
            path += "/" + path_segment(check_name(package, "package name")) + "/"
        body = self._get(path, what="list actions", expect=dict if count else list,
                         params=self._list_params(limit, skip, count), request_id=request_id)
        if count:
            return self._count(body, "actions")
        return [_action_info(row) for row in body if isinstance(row, dict)]

    def get_action(self, name: str, *, namespace: str | None = None, code: bool = False,
                   request_id: str | None = None) -> dict:
        return self._get(self._action_path(namespace, name), what=f"get action {name}",
                         params={"code": _flag(code)}, request_id=request_id)

    def _activation_path(self, activation_id: str, namespace: str | None) -> str:
        check_activation_id(activation_id)
        return f"{self._collection(namespace, 'activations')}/{activation_id}"

    def get_activation(self, activation_id: str, *, namespace: str | None = None,
                       request_id: str | None = None) -> Activation:
        """The full activation record; NotFound until OpenWhisk has stored it."""
        body = self._get(self._activation_path(activation_id, namespace),
                         what=f"get activation {activation_id}", request_id=request_id)
        return Activation.from_json(body)

    def _list(self, collection: str, namespace: str | None, limit: int, skip: int,
              count: bool, request_id: str | None, **extra: Any) -> list[dict] | int:
        body = self._get(self._collection(namespace, collection), what=f"list {collection}",
                         params=self._list_params(limit, skip, count, **extra),
                         request_id=request_id, expect=dict if count else list)
        if count:
            return self._count(body, collection)
        return list(body)

    def list_packages(self, *, namespace: str | None = None, limit: int = 30, skip: int = 0,
                      count: bool = False, public: bool | None = None,
                      request_id: str | None = None) -> list[dict] | int:
        return self._list("packages", namespace, limit, skip, count, request_id,
                          public=None if public is None else _flag(public))

    def get_package(self, name: str, *, namespace: str | None = None,
                    request_id: str | None = None) -> dict:
        return self._get(self._entity(namespace, "packages", name, "package name"),
                         what=f"get package {name}", request_id=request_id)

    def list_triggers(self, *, namespace: str | None = None, limit: int = 30, skip: int = 0,
                      count: bool = False, request_id: str | None = None) -> list[dict] | int:
        return self._list("triggers", namespace, limit, skip, count, request_id)

    def get_trigger(self, name: str, *, namespace: str | None = None,
                    request_id: str | None = None) -> dict:
        return self._get(self._entity(namespace, "triggers", name, "trigger name"),
                         what=f"get trigger {name}", request_id=request_id)

    def list_rules(self, *, namespace: str | None = None, limit: int = 30, skip: int = 0,
                   count: bool = False, request_id: str | None = None) -> list[dict] | int:
        return self._list("rules", namespace, limit, skip, count, request_id)

    def get_rule(self, name: str, *, namespace: str | None = None,
                 request_id: str | None = None) -> dict:
        return self._get(self._entity(namespace, "rules", name, "rule name"),
                         what=f"get rule {name}", request_id=request_id)

    def enable_rule(self, name: str, *, namespace: str | None = None,
                    request_id: str | None = None) -> dict:
        return self._set_rule_state(name, "active", namespace, request_id)

    def disable_rule(self, name: str, *, namespace: str | None = None,
                     request_id: str | None = None) -> dict:
        return self._set_rule_state(name, "inactive", namespace, request_id)

    def _set_rule_state(self, name: str, state: str, namespace: str | None,
                        request_id: str | None) -> dict:
        what = f"set rule {name} {state}"
        response = self._request("POST", self._entity(namespace, "rules", name, "rule name"),
                                 what=what, json_body={"status": state}, request_id=request_id)
        # OpenWhisk answers 200 (swagger also allows 202), with the rule or an empty body.
        if response.status_code not in (200, 202):
            raise answer_error(response, what)
        body = _json(response)
        return body if isinstance(body, dict) else {}


    # --- managing entities ----------------------------------------------------------------------
    # Writes are sent once: a repeated PUT without overwrite, or a repeated DELETE, would answer
    # 409 or 404 for a change that was made.

    def _write(self, method: str, path: str, *, what: str, json_body: Any = None,
               params: dict[str, Any] | None = None, request_id: str | None = None) -> dict:
        """OpenWhisk's entity document from a 200 answer to a PUT or DELETE."""
        response = self._request(method, path, what=what, params=params, json_body=json_body,
                                 request_id=request_id)
        if response.status_code != 200:
            raise answer_error(response, what)
        body = _json(response)
        if not isinstance(body, dict):
            raise unexpected_answer(response, what)
        return body

    def put_action(self, name: str, body: dict, *, namespace: str | None = None,
                   overwrite: bool = False, request_id: str | None = None) -> dict:
        """Create (409 if it exists, unless ``overwrite``) or update an action."""
        return self._write("PUT", self._action_path(namespace, name), what=f"put action {name}",
                           json_body=body, params={"overwrite": _flag(overwrite)},
                           request_id=request_id)

    def delete_action(self, name: str, *, namespace: str | None = None,
                      request_id: str | None = None) -> dict:
        return self._write("DELETE", self._action_path(namespace, name),
                           what=f"delete action {name}", request_id=request_id)

    def _put_entity(self, collection: str, name: str, body: dict, namespace: str | None,
                    overwrite: bool, request_id: str | None) -> dict:
        what = collection[:-1]
        return self._write("PUT", self._entity(namespace, collection, name, f"{what} name"),
                           what=f"put {what} {name}", json_body=body,
                           params={"overwrite": _flag(overwrite)}, request_id=request_id)

    def _delete_entity(self, collection: str, name: str, namespace: str | None,
                       request_id: str | None, params: dict | None = None) -> dict:
        what = collection[:-1]
        return self._write("DELETE", self._entity(namespace, collection, name, f"{what} name"),
                           what=f"delete {what} {name}", params=params, request_id=request_id)

    def put_package(self, name: str, body: dict, *, namespace: str | None = None,
                    overwrite: bool = False, request_id: str | None = None) -> dict:
        return self._put_entity("packages", name, body, namespace, overwrite, request_id)

    def delete_package(self, name: str, *, namespace: str | None = None, force: bool = False,
                       request_id: str | None = None) -> dict:
        """Delete a package; OpenWhisk answers 409 for one with actions unless ``force``."""
        return self._delete_entity("packages", name, namespace, request_id,
                                   params={"force": "true"} if force else None)

    def put_trigger(self, name: str, body: dict, *, namespace: str | None = None,
                    overwrite: bool = False, request_id: str | None = None) -> dict:
        return self._put_entity("triggers", name, body, namespace, overwrite, request_id)

    def delete_trigger(self, name: str, *, namespace: str | None = None,
                       request_id: str | None = None) -> dict:
        return self._delete_entity("triggers", name, namespace, request_id)

    def put_rule(self, name: str, body: dict, *, namespace: str | None = None,
                 overwrite: bool = False, request_id: str | None = None) -> dict:
        return self._put_entity("rules", name, body, namespace, overwrite, request_id)

    def delete_rule(self, name: str, *, namespace: str | None = None,
                    request_id: str | None = None) -> dict:
        return self._delete_entity("rules", name, namespace, request_id)

    # --- the system catalog: feeds and the API gateway -------------------------------------------
    # OpenWhisk's feed and apimgmt protocols hand the caller's namespace key to the system action
    # (the alarms provider fires the trigger with it; the gateway calls the backend with it), so
    # the key is added here, and only for actions of SYSTEM_NAMESPACE, never any other.

    def _key_text(self) -> str:
        return ":".join(self._auth)

    def invoke_feed(self, feed: str, lifecycle_event: str, trigger: str, params: dict, *,
                    namespace: str, request_id: str | None = None,
                    read_timeout: float | None = None,
                    ) -> Activation | ActivationPending | ActionResult:
        """Run one lifecycle event (CREATE, READ, UPDATE, DELETE...) of a system feed action
        for ``/namespace/trigger``, blocking, as OpenWhisk's CLI does."""
        feed_ns, feed_action = split_system_path(feed)
        payload = {**params, "lifecycleEvent": lifecycle_event,
                   "triggerName": f"/{check_namespace(namespace)}/{check_name(trigger)}",
                   "authKey": self._key_text()}
        return self.invoke_action(feed_action, payload, namespace=feed_ns, blocking=True,
                                  request_id=request_id, read_timeout=read_timeout)

    def _apimgmt(self, method: str, operation: str, *, params: dict[str, Any],
                 json_body: Any = None, request_id: str | None = None) -> Any:
        what = f"apimgmt {operation}"
        path = f"/api/v1/web/{SYSTEM_NAMESPACE}/apimgmt/{operation}.http"
        if self._apigw_token:
            # As wsk sends its APIGW_ACCESS_TOKEN, with the namespace's uuid as the space.
            params = {**params, "accesstoken": self._apigw_token, "spaceguid": self._auth[0]}
        response = self._request(method, path, what=what, params=params, json_body=json_body,
                                 request_id=request_id, idempotent=method == "GET")
        if response.status_code != 200:
            raise answer_error(response, what)
        return _json(response)

    def create_api(self, apidoc: dict, *, response_type: str = "json",
                   request_id: str | None = None) -> dict:
        """``createApi``: a route on the gateway; the backend is called with this client's key."""
        action = dict(apidoc.get("action") or {})
        action["authkey"] = self._key_text()
        body = self._apimgmt("POST", "createApi", params={"responsetype": response_type},
                             json_body={"apidoc": {**apidoc, "action": action}},
                             request_id=request_id)
        return body if isinstance(body, dict) else {}

    def get_apis(self, *, basepath: str | None = None, relpath: str | None = None,
                 operation: str | None = None, request_id: str | None = None) -> dict:
        """``getApi``: ``{"apis": [{"id", "key", "value": {..., "apidoc": swagger}}]}``."""
        params = {k: v for k, v in (("basepath", basepath), ("relpath", relpath),
                                    ("operation", operation)) if v}
        body = self._apimgmt("GET", "getApi", params=params, request_id=request_id)
        return body if isinstance(body, dict) else {"apis": []}

    def delete_api(self, *, basepath: str, relpath: str | None = None,
                   operation: str | None = None, request_id: str | None = None) -> None:
        params = {k: v for k, v in (("basepath", basepath), ("relpath", relpath),
                                    ("operation", operation)) if v}
        self._apimgmt("DELETE", "deleteApi", params=params, request_id=request_id)

    def web_action_url(self, action: str, *, namespace: str | None = None,
                       extension: str = ".http") -> str:
        """The public URL of a web action, ``/api/v1/web/<ns>/<package|default>/<action>``."""
        package, name = split_action(action)
        return (f"{self.api_host}/api/v1/web/{self._ns(namespace)}/"
                f"{path_segment(package or 'default')}/{path_segment(name)}{extension}")


def _json_text(value: Any) -> str:
    """A query parameter's JSON text; NaN and Infinity are no JSON, as in a body."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"a parameter cannot be sent as JSON: {exc}") from None


def _action_info(row: dict) -> ActionInfo:
    annotations = tuple(
        (a.get("key"), a.get("value")) for a in row.get("annotations") or []
        if isinstance(a, dict)
    )
    kind = dict(annotations).get("exec")
    if kind is None and isinstance(row.get("exec"), dict):
        kind = row["exec"].get("kind")
    return ActionInfo(
        name=row.get("name", ""),
        namespace=row.get("namespace", ""),
        version=row.get("version", ""),
        published=bool(row.get("publish", False)),
        annotations=annotations,
        kind=kind,
    )
