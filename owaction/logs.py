"""AAA logging: WaddleBot's line format for every event, on console, file and syslog.

    [2026-01-30 12:00:00.123] INFO openwhisk_action_module:1.0.0 AUDIT community=42 user=u1 \
action=invoke_action result=SUCCESS time=87ms activation_id=...

Event types: AUTH (tokens, keys), AUTHZ (permission decisions), AUDIT (executions), ERROR and
SYSTEM (start, stop, configuration, registration, reloads). A record logged without an event type
(a library's, say) is written as SYSTEM, or ERROR at level ERROR and above, so every line parses
the same way. Values holding spaces, quotes or newlines are quoted, so one event is one line.
``LOG_FORMAT=json`` writes the same fields as one JSON object per line.

Secrets never reach a line: callers log sizes, not payloads, and a filter replaces any configured
secret value that slipped into a message.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any

from owaction import __version__
from owaction.config import Settings

AAA_LOGGER = "owaction.aaa"
# Looked up once: getLogger takes the logging module's lock on every call.
_AAA = logging.getLogger(AAA_LOGGER)
EVENT_TYPES = ("AUTH", "AUTHZ", "AUDIT", "ERROR", "SYSTEM")
FILE_MAX_BYTES = 10 * 1024 * 1024
FILE_BACKUPS = 5
# Bare only when nothing in it could break the line or a terminal showing it: no space, quote,
# equals sign, backslash or control character (a NUL or an escape in a request path, say).
_BARE_VALUE = re.compile(r"\A[^\s\"=\\\x00-\x1f\x7f-\x9f]+\Z")
_C1 = re.compile(r"[\x7f-\x9f]")

# A line of this format, for tests and log shippers.
_VALUE = r"(\"(?:[^\"\\]|\\.)*\"|[^\s\"]+)"
LINE_RE = re.compile(
    r"\A\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    rf"\S+:\S+ (AUTH|AUTHZ|AUDIT|ERROR|SYSTEM) community={_VALUE} user={_VALUE} "
    rf"action={_VALUE} result={_VALUE}( [A-Za-z_][A-Za-z0-9_.]*={_VALUE})*\Z"
)


# Quoted forms of the short values lines repeat (callers, sources, statuses, times): a look-up
# instead of a regular expression for most values of a line. Ids (32 characters) are longer and
# never repeat, so they stay out, and the cache stays under about 100 KB; emptied when full.
_QUOTED: dict[str, str] = {}
_QUOTED_MAX, _QUOTED_MAX_LENGTH = 1024, 24


def quote(value: Any) -> str:
    """A value as it appears after ``key=``: bare when safe, else a JSON string."""
    if value is None or value == "":
        return "-"
    text = value if isinstance(value, str) else str(value)
    quoted = _QUOTED.get(text)
    if quoted is None:
        quoted = _quote(text)
        if len(text) <= _QUOTED_MAX_LENGTH:
            if len(_QUOTED) >= _QUOTED_MAX:
                _QUOTED.clear()
            _QUOTED[text] = quoted
    return quoted


def _quote(text: str) -> str:
    if _BARE_VALUE.match(text):
        return text
    # JSON escapes C0 controls; DEL and the C1 controls are escaped the same way here.
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _fields(record: logging.LogRecord) -> tuple[str, str, str, str, str, dict[str, Any]]:
    event = getattr(record, "aaa_event", None)
    if event not in EVENT_TYPES:
        event = "ERROR" if record.levelno >= logging.ERROR else "SYSTEM"
    action = getattr(record, "aaa_action", None) or record.name
    result = getattr(record, "aaa_result", None) or record.levelname
    extra = dict(getattr(record, "aaa_fields", None) or {})
    community = extra.pop("community", None)
    user = extra.pop("user", None)
    message = record.getMessage()
    if message:
        extra.setdefault("msg", message)
    if record.exc_info and record.exc_info[0] is not None:
        extra.setdefault("exception", getattr(record, "aaa_exception", None)
                         or f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        # The whole traceback, as one quoted value: quote() escapes its newlines.
        extra.setdefault("traceback", record.exc_text or _traceback(record))
    return event, action, result, quote(community), quote(user), extra


def _traceback(record: logging.LogRecord) -> str:
    return "".join(traceback.format_exception(*record.exc_info)).rstrip()


# The last second formatted and its text: the date and time change once a second, the lines
# many times. One tuple, replaced whole, so a thread never pairs one second with another's text.
_LAST_SECOND: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    global _LAST_SECOND  # noqa: PLW0603 - a cache, replaced whole
    second, text = _LAST_SECOND
    if second != int(record.created):
        second = int(record.created)
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        _LAST_SECOND = (second, text)
    return f"{text}.{int(record.msecs):03d}"


class AAAFormatter(logging.Formatter):
    def __init__(self, module: str, version: str = __version__):
        super().__init__()
        self.prefix = f"{module}:{version}"

    def format(self, record: logging.LogRecord) -> str:
        # Every handler (console, file, syslog) formats the record; do the work once.
        cached = record.__dict__.get("_aaa_text")
        if cached is not None:
            return cached
        record._aaa_text = text = self._format(record)
        return text

    def _format(self, record: logging.LogRecord) -> str:
        event, action, result, community, user, extra = _fields(record)
        parts = [
            f"[{_timestamp(record)}]",
            record.levelname,
            self.prefix,
            event,
            f"community={community}",
            f"user={user}",
            f"action={quote(action)}",
            f"result={quote(result)}",
        ]
        parts.extend(f"{k}={quote(v)}" for k, v in extra.items() if v is not None)
        return " ".join(parts)


class JSONFormatter(logging.Formatter):
    def __init__(self, module: str, version: str = __version__):
        super().__init__()
        self.module, self.version = module, version

    def format(self, record: logging.LogRecord) -> str:
        event, action, result, community, user, extra = _fields(record)
        body = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "module": self.module,
            "version": self.version,
            "event": event,
            "community": None if community == "-" else community,
            "user": None if user == "-" else user,
            "action": action,
            "result": result,
        }
        body.update({k: v for k, v in extra.items() if v is not None})
        return json.dumps(body, default=str, ensure_ascii=False)


class LineBatches:
    """Console and file lines written together every ``interval`` seconds by one thread, instead
    of one write and flush per line (``LOG_FLUSH_INTERVAL_MS``; off by default).

    In the threaded gRPC process every write hands the GIL over and back: one AAA line a call
    is 12 % of its CPU, and at 20 ms the process spent 7 % less CPU a call (bench/README.md).
    The price: a line reaches its file up to ``interval`` later, and a process killed outright
    (SIGKILL, a crash in C) loses its last interval's lines; a normal exit writes them, since
    ``logging.shutdown`` flushes every handler. A forked child (a gunicorn worker) starts with
    none of its parent's pending lines (the parent writes those) and a thread of its own.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self._after_fork()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[logging.Handler, list[str]] = {}
        self._started = False

    def add(self, handler: logging.Handler, text: str) -> None:
        with self._lock:
            self._pending.setdefault(handler, []).append(text)
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="owaction-log-lines",
                                 daemon=True).start()

    def flush(self, handler: logging.Handler) -> None:
        """Write ``handler``'s pending lines. Taken and written under the handler's lock, so its
        batches reach the stream in order; the lock order is always the handler's, then ours."""
        handler.acquire()
        try:
            with self._lock:
                lines = self._pending.pop(handler, None)
            if lines:
                handler.write_batch("".join(lines))  # type: ignore[attr-defined]
        finally:
            handler.release()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                handlers = list(self._pending)
            for handler in handlers:
                try:
                    self.flush(handler)
                except Exception:  # noqa: BLE001 - a broken stream must not stop the others
                    handler.handleError(logging.makeLogRecord({"msg": "log batch lost"}))


class _Batched:
    """A handler whose lines go through ``batches`` when it is set (see LineBatches)."""

    batches: LineBatches | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.batches is None:
            super().emit(record)  # type: ignore[misc]
            return
        try:
            self.batches.add(self, self.format(record) + self.terminator)  # type: ignore
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own convention for a failed emit
            self.handleError(record)  # type: ignore[attr-defined]

    def flush(self) -> None:
        if self.batches is not None:
            self.batches.flush(self)  # type: ignore[arg-type]
        super().flush()  # type: ignore[misc]

    def write_batch(self, text: str) -> None:
        """Under the handler's lock: one batch of lines, one write and one flush."""
        self.stream.write(text)  # type: ignore[attr-defined]
        self.stream.flush()  # type: ignore[attr-defined]


class ConsoleHandler(_Batched, logging.StreamHandler):
    pass


class SizeRotatingFileHandler(_Batched, logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that asks the file for its size only near the limit.

    Python 3.11's ``shouldRollover`` stats the path and seeks the file for every record: system
    calls that in the threaded gRPC process each also hand the GIL over and back. This one
    counts the characters it writes and asks the file its size (one seek) when the count
    reaches the limit, and every ``RECHECK_RECORDS`` records, since other writers (the REST
    workers share their file) and characters of more than one byte grow the file faster than
    the count does.
    """

    RECHECK_RECORDS = 256

    _size: int | None = None  # the file's size as last asked, plus what was written since
    _unchecked = 0  # records since the file was last asked

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - stdlib name
        return self.maxBytes > 0 and self._reaches_limit(len(self.format(record)) + 1)

    def _reaches_limit(self, length: int) -> bool:
        """True when ``length`` more characters would reach the limit; else counts them."""
        if self.stream is None:
            self.stream = self._open()
            self._size = None
        self._unchecked += 1
        if (self._size is None or self._size + length >= self.maxBytes
                or self._unchecked >= self.RECHECK_RECORDS):
            self._size, self._unchecked = self.stream.tell(), 0
        if self._size + length >= self.maxBytes:
            return True
        self._size += length
        return False

    def doRollover(self) -> None:  # noqa: N802 - stdlib name
        super().doRollover()
        self._size = None  # a new file: asked again at the next record

    def write_batch(self, text: str) -> None:
        if self.maxBytes > 0 and self._reaches_limit(len(text)):
            self.doRollover()
            self._reaches_limit(len(text))  # counted in the new file
        if self.stream is None:
            self.stream = self._open()
        super().write_batch(text)


class SecretFilter(logging.Filter):
    """Replaces configured secret values anywhere in a record's text, as a last line of defence."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 6}, key=len,
                                    reverse=True))

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, "********")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        # Each handler (console, file, syslog) runs its filters; a record is scrubbed once.
        if self.secrets and not record.__dict__.get("_aaa_scrubbed"):
            record._aaa_scrubbed = True
            message = record.getMessage()
            record.args = None
            fields = getattr(record, "aaa_fields", None)
            # Almost no line holds a secret: one search of each secret over all of the line's
            # text decides whether its values need scrubbing one by one.
            text = "\n".join([message, *(v for v in fields.values() if isinstance(v, str))]
                              if fields else [message])
            if any(secret in text for secret in self.secrets):
                message = self._scrub(message)
                if fields:
                    record.aaa_fields = {k: self._scrub(v) for k, v in fields.items()}
            record.msg = message
            if record.exc_info and record.exc_info[0] is not None:
                # An exception's text may quote a secret too.
                record.aaa_exception = self._scrub(
                    f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
                record.exc_text = self._scrub(_traceback(record))
        return True


def secrets_of(settings: Settings) -> list[str]:
    values = [settings.module_secret_key, settings.service_key, settings.callback_secret,
              settings.openwhisk_apigw_token]
    key = settings.openwhisk_auth_key
    values += [key, key.partition(":")[2]]
    values += [k for _, k in settings.api_keys]
    values += [v for _, v in settings.web_action_secret_env]
    return [v for v in values if v]


def aaa(event: str, action: str, result: str, *, level: int = logging.INFO,
        community: Any = None, user: Any = None, **fields: Any) -> None:
    """Log one AAA event."""
    _AAA.log(
        level,
        "",
        extra={
            "aaa_event": event,
            "aaa_action": action,
            "aaa_result": result,
            "aaa_fields": {"community": community, "user": user, **fields},
        },
    )


def setup_logging(settings: Settings, *, process: str = "owaction") -> list[str]:
    """Configure the root logger for an entry point; returns warnings it has already logged.

    Only entry points call this (never library code), once per process.
    """
    # Neither format shows the caller's file and line, thread or process, so the logging
    # module need not look them up for every record (its documented optimisation): two lines
    # per request, each a stack walk and several lookups fewer.
    logging._srcfile = None  # noqa: SLF001 - the documented switch
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JSONFormatter(settings.module_name)
    else:
        formatter = AAAFormatter(settings.module_name)
    secret_filter = SecretFilter(secrets_of(settings))
    handlers: list[logging.Handler] = [ConsoleHandler(sys.stderr)]
    warnings: list[str] = []
    try:
        os.makedirs(settings.log_dir, exist_ok=True)
        path = os.path.join(settings.log_dir, f"{process}.log")
        handlers.append(SizeRotatingFileHandler(
            path, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8",
        ))
    except OSError as exc:
        warnings.append(
            f"LOG_DIR {settings.log_dir} is not writable ({exc.strerror}); logging to the "
            "console only"
        )
    if settings.enable_syslog:
        facility = logging.handlers.SysLogHandler.facility_names.get(
            settings.syslog_facility.lower(), logging.handlers.SysLogHandler.LOG_LOCAL0
        )
        try:
            handlers.append(logging.handlers.SysLogHandler(
                address=(settings.syslog_host, settings.syslog_port), facility=facility,
            ))
        except OSError as exc:
            warnings.append(f"syslog at {settings.syslog_host}:{settings.syslog_port}: {exc}")
    if settings.log_flush_interval_ms:
        batches = LineBatches(settings.log_flush_interval_ms / 1000)
        for handler in handlers:
            if isinstance(handler, _Batched):
                handler.batches = batches
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(secret_filter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # urllib3 logs every pooled connection at DEBUG and retries at WARNING; keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    for warning in warnings:
        aaa("SYSTEM", "logging", "WARNING", level=logging.WARNING, msg=warning)
    return warnings
