"""The emulator's action runtime: runs action code in separate OS processes, like OpenWhisk's
invoker runs it in containers.

Processes come from a fork server (``runners/zygote.py``), started once per ``Runtime`` with
``subprocess``; the emulator itself never forks, which matters because it is gevent-patched. A
python:3 worker is a fork of the zygote (its imports already loaded); a nodejs worker is a
fork+exec of ``node runners/noderunner.js``. Each worker has three sockets to the emulator:
control (init/run requests and results), stdout and stderr, so what an action prints can never
pass for its result. Every wait here is on sockets through ``selectors``, which gevent patches,
so ``run()`` is cooperative under gevent and blocks only its own thread otherwise.

Warm workers are kept per action key (one action version), at most ``max_warm_per_action`` each,
and reaped after ``idle_seconds`` idle. A worker that failed in any way is killed, never reused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RUNNERS = Path(__file__).resolve().parent / "runners"
PYTHON_KINDS = ("python:3",)
NODE_KINDS = ("nodejs:20", "nodejs:default")

MAX_RESULT_BYTES = 1048576
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
_MIB = 1024 * 1024
_SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
# A control header is a short JSON line; anything longer is a broken worker, not a result.
_HEADER_LIMIT = 64 * 1024
# After a result, how long the logs may still take to reach their end-of-activation sentinel.
_LOG_GRACE_SECONDS = 2.0
# After a kill, output already written is still read, for this long at most.
_DRAIN_AFTER_KILL_SECONDS = 0.5
_ZYGOTE_TIMEOUT_SECONDS = 30.0
_SEND_TIMEOUT_SECONDS = 30.0
_READ_CHUNK = 65536

MSG_TIMEOUT = "The action exceeded its time limits of {ms} milliseconds."
MSG_INIT_TIMEOUT = "The action exceeded its time limits of {ms} milliseconds during initialization."
MSG_ABNORMAL_RUN = "The action did not produce a valid response and exited unexpectedly."
MSG_ABNORMAL_INIT = "The action did not initialize and exited unexpectedly."
MSG_INIT_FAILED = "The action failed during initialization: {msg}"
MSG_MEMORY = "The action exhausted its memory and was aborted."
MSG_INVALID = "The action did not produce a valid JSON or JSON Array response: {text}"
MSG_TRUNCATED = (
    "The action produced a response that exceeded the allowed length: {size} > {limit} bytes."
    " The truncated response was: {text}"
)
MSG_LOGS_TRUNCATED = (
    "Logs were truncated because the total bytes size exceeds the limit of {limit} bytes."
)
# What a process killed for exhausting its memory leaves on stderr (node's heap limit, python's
# allocator failing outside the runner's reach).
_MEMORY_MARKERS = (b"heap out of memory", b"MemoryError", b"Cannot allocate memory")


@dataclass(frozen=True)
class ActionCode:
    """One version of an action's code and limits; ``key`` names the version."""

    key: str
    kind: str
    code: str
    main: str = "main"
    timeout_ms: int = 60000
    memory_mb: int = 256
    logs_mb: int = 10
    env: tuple[tuple[str, str], ...] = ()
    binary: bool = False  # ``code`` is a base64 zip


@dataclass
class RunOutcome:
    """What one activation produced, in OpenWhisk's terms."""

    status: str
    result: dict | list
    logs: list[str]
    start_ms: int
    end_ms: int
    init_ms: int | None
    wait_ms: int
    timed_out: bool
    size: int | None = None


class RuntimeUnavailable(Exception):
    """The fork server could not provide a process (an internal error, not the action's)."""


def _epoch_ms() -> int:
    return int(time.time() * 1000)


def _log_time() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class _Worker:
    """One action process as the emulator sees it: its pid and three sockets."""

    def __init__(self, key: str, pid: int, sockets: tuple[socket.socket, ...], generation: int):
        self.key = key
        self.pid = pid
        self.control, self.stdout, self.stderr = sockets
        self.generation = generation
        self.sentinel = f"{_SENTINEL}_{secrets.token_hex(8)}"
        self.last_used = time.monotonic()
        for sock in sockets:
            sock.setblocking(False)

    def send(self, message: dict) -> None:
        # An idle worker reads at once; the timeout only bounds a worker that stopped reading.
        self.control.settimeout(_SEND_TIMEOUT_SECONDS)
        try:
            self.control.sendall(json.dumps(message).encode() + b"\n")
        finally:
            self.control.setblocking(False)

    def close(self) -> None:
        for sock in (self.control, self.stdout, self.stderr):
            sock.close()


class _Logs:
    """Collects one activation's stdout/stderr lines, bounded by the log limit."""

    def __init__(self, limit_bytes: int, sentinel: str):
        self.limit = limit_bytes
        self.sentinel = sentinel.encode()
        self.used = 0
        self.truncated = False
        self.lines: list[str] = []
        self.pending = {"stdout": b"", "stderr": b""}
        self.partial = {"stdout": b"", "stderr": b""}
        self.ended = {"stdout": False, "stderr": False}
        self.stderr_tail = b""

    def feed(self, stream: str, data: bytes) -> None:
        if self.ended[stream]:
            return  # output after the sentinel belongs to no activation
        if stream == "stderr":
            self.stderr_tail = (self.stderr_tail + data)[-4096:]
        buffer = self.pending[stream] + data
        found = buffer.find(self.sentinel)
        if found >= 0:
            self._content(stream, buffer[:found])
            self.pending[stream] = b""
            self.end(stream)
            return
        # Keep a tail that could be the start of a sentinel split across reads.
        keep = len(self.sentinel) - 1
        self._content(stream, buffer[:-keep])
        self.pending[stream] = buffer[-keep:]

    def end(self, stream: str) -> None:
        """The stream reached its sentinel or EOF: what is left is its last line."""
        if self.ended[stream]:
            return
        self._content(stream, self.pending[stream])
        self.pending[stream] = b""
        if self.partial[stream]:
            self._emit(stream, self.partial[stream])
            self.partial[stream] = b""
        self.ended[stream] = True

    @property
    def done(self) -> bool:
        return all(self.ended.values())

    def finish(self) -> list[str]:
        for stream in ("stdout", "stderr"):
            self.end(stream)
        if self.truncated:
            warning = MSG_LOGS_TRUNCATED.format(limit=self.limit)
            self.lines.append(f"{_log_time()} stderr: {warning}")
        return self.lines

    def _content(self, stream: str, data: bytes) -> None:
        while data:
            newline = data.find(b"\n")
            if newline < 0:
                if not self.truncated:
                    self.partial[stream] += data
                    # A line longer than what is left of the limit can only be dropped; holding it
                    # would let one unterminated line fill the emulator's memory.
                    if len(self.partial[stream]) > self.limit - self.used:
                        self.truncated = True
                        self.partial[stream] = b""
                return
            self._emit(stream, self.partial[stream] + data[:newline])
            self.partial[stream] = b""
            data = data[newline + 1 :]

    def _emit(self, stream: str, raw: bytes) -> None:
        if self.truncated:
            return
        cost = len(raw) + 1
        if self.used + cost > self.limit:
            self.truncated = True
            return
        self.used += cost
        text = raw.decode("utf-8", "replace")
        self.lines.append(f"{_log_time()} {stream}: {text}")


class _Reply:
    """One control reply: a JSON header line, then ``size`` raw bytes, kept up to the cap."""

    def __init__(self):
        self.buffer = b""
        self.header: dict | None = None
        self.size = 0
        self.received = 0
        self.body = bytearray()
        self.broken = False

    @property
    def complete(self) -> bool:
        return self.header is not None and self.received >= self.size

    def feed(self, data: bytes) -> None:
        if self.header is None:
            self.buffer += data
            newline = self.buffer.find(b"\n")
            if newline < 0:
                self.broken = len(self.buffer) > _HEADER_LIMIT
                return
            try:
                self.header = json.loads(self.buffer[:newline])
                self.size = int(self.header.get("size", 0))
            except (ValueError, TypeError, AttributeError):
                self.broken = True
                return
            data = self.buffer[newline + 1 :]
            self.buffer = b""
        take = data[: max(self.size - self.received, 0)]
        self.received += len(take)
        room = MAX_RESULT_BYTES - len(self.body)
        if room > 0:
            self.body += take[:room]


class _Session:
    """Reads one worker's three sockets for the length of one activation."""

    def __init__(self, worker: _Worker, logs: _Logs):
        self.worker = worker
        self.logs = logs
        self.selector = selectors.DefaultSelector()
        self.selector.register(worker.stdout, selectors.EVENT_READ, "stdout")
        self.selector.register(worker.stderr, selectors.EVENT_READ, "stderr")
        self.selector.register(worker.control, selectors.EVENT_READ, "control")
        self.control_eof = False
        self.reply: _Reply | None = None

    def close(self) -> None:
        self.selector.close()

    def wait_reply(self, deadline: float) -> _Reply | None:
        """The worker's next reply; None when it hung up first; raises TimeoutError at deadline."""
        self.reply = _Reply()
        while not self.reply.complete:
            if self.control_eof or self.reply.broken:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._pump(remaining)
        return self.reply

    def drain(self, seconds: float) -> None:
        """Read logs until both streams reach their sentinel or EOF, for ``seconds`` at most."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(KeyError):
            self.selector.unregister(self.worker.control)
        while not self.logs.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._pump(remaining)

    def _pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            name = key.data
            try:
                data = key.fileobj.recv(_READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if name == "control":
                if data:
                    self.reply.feed(data)
                else:
                    self.control_eof = True
                    self.selector.unregister(key.fileobj)
            elif data:
                self.logs.feed(name, data)
            else:
                self.logs.end(name)
                self.selector.unregister(key.fileobj)
            if name != "control" and self.logs.ended[name]:
                with contextlib.suppress(KeyError):
                    self.selector.unregister(key.fileobj)


class _Zygote:
    """The fork server process and the requests the emulator makes to it."""

    def __init__(self, workdir: Path, generation: int):
        self.generation = generation
        self.path = str(workdir / f"zygote-{generation}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(1024)
            # The listening socket is created here and handed over, so requests can queue on it
            # before the zygote has even started: no start-up handshake to wait for.
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(RUNNERS / "zygote.py"), str(listener.fileno())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=(listener.fileno(),),
                cwd=str(workdir),
            )
        finally:
            listener.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: dict, fds: list[int] = ()) -> dict:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(_ZYGOTE_TIMEOUT_SECONDS)
        try:
            conn.connect(self.path)
            payload = json.dumps(request).encode() + b"\n"
            if fds:
                socket.send_fds(conn, [payload], list(fds))
            else:
                conn.sendall(payload)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
        finally:
            conn.close()
        if not answer:
            raise RuntimeUnavailable("the fork server closed the connection without answering")
        return json.loads(answer)

    def stop(self) -> None:
        # EOF on its stdin makes the zygote kill every worker and exit.
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class Runtime:
    """Runs actions in warm-pooled OS processes; safe to call from many greenlets or threads."""

    def __init__(self, *, max_warm_per_action: int = 4, idle_seconds: float = 60.0):
        self.max_warm_per_action = max_warm_per_action
        self.idle_seconds = idle_seconds
        self._node = shutil.which("node")
        self._workdir = Path(tempfile.mkdtemp(prefix="owaction-runtime-"))
        self._lock = threading.Lock()
        self._zygote_lock = threading.Lock()
        self._zygote: _Zygote | None = None
        self._generation = 0
        self._idle: dict[str, list[_Worker]] = {}
        self._closed = False
        self._stop_reaper = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="runtime-reaper", daemon=True)
        self._reaper.start()

    def kinds(self) -> list[str]:
        """The action kinds this machine can run."""
        return list(PYTHON_KINDS) + (list(NODE_KINDS) if self._node else [])

    # --- public API ----------------------------------------------------------------------------

    def run(
        self, action: ActionCode, params: dict, *, activation_env: dict[str, str]
    ) -> RunOutcome:
        """Run one activation of ``action``; never raises for anything the action did."""
        began = time.monotonic()
        began_ms = _epoch_ms()
        if action.kind not in self.kinds():
            return self._internal_error(f"The kind '{action.kind}' is not supported.", began_ms)
        worker = self._take_warm(action.key)
        cold = worker is None
        if cold:
            try:
                worker = self._spawn(action)
            except (OSError, ValueError, RuntimeUnavailable) as exc:
                return self._internal_error(f"Failed to start the action: {exc}", began_ms)
        wait_ms = int((time.monotonic() - began) * 1000)
        logs = _Logs(action.logs_mb * _MIB, worker.sentinel)
        session = _Session(worker, logs)
        try:
            return self._activate(action, params, activation_env, worker, session, cold, wait_ms)
        except BaseException:
            # Whatever went wrong here (even a greenlet killed mid-run), the process is in an
            # unknown state: it must not be left running or handed to the next activation.
            self._discard(worker)
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Kill every action process and the fork server."""
        with self._lock:
            self._closed = True
            idle = [w for workers in self._idle.values() for w in workers]
            self._idle.clear()
        self._stop_reaper.set()
        for worker in idle:
            worker.close()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.stop()
                self._zygote = None
        if self._reaper is not threading.current_thread():
            self._reaper.join(5)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def warm_count(self, key: str) -> int:
        """How many idle warm processes the action version ``key`` has."""
        with self._lock:
            return len(self._idle.get(key, ()))

    # --- one activation ------------------------------------------------------------------------

    def _activate(self, action, params, activation_env, worker, session, cold, wait_ms):
        timeout_s = action.timeout_ms / 1000
        init_ms = None
        if cold:
            init_start = time.monotonic()
            init_start_ms = _epoch_ms()
            init = {"op": "init", "main": action.main or "main", "sentinel": worker.sentinel}
            try:
                if action.binary:
                    init["dir"] = str(self._unpack(action))
                else:
                    init["code"] = action.code
            except ValueError as exc:
                init_ms = _epoch_ms() - init_start_ms
                return self._fail(worker, session, MSG_INIT_FAILED.format(msg=exc),
                                  init_start_ms + init_ms, wait_ms, init_ms=init_ms)
            try:
                worker.send(init)
                reply = session.wait_reply(init_start + timeout_s)
            except TimeoutError:
                init_ms = _epoch_ms() - init_start_ms
                # A failed init has no run: it "starts" where init ended, so that start - initTime
                # is still when the process was asked to initialise.
                return self._fail(
                    worker, session, MSG_INIT_TIMEOUT.format(ms=action.timeout_ms),
                    init_start_ms + init_ms, wait_ms, init_ms=init_ms, timed_out=True,
                )
            except OSError:
                reply = None
            init_ms = _epoch_ms() - init_start_ms
            if reply is None or not reply.header.get("ok"):
                return self._init_failed(
                    worker, session, reply, init_start_ms + init_ms, init_ms, wait_ms
                )

        start = time.monotonic()
        start_ms = _epoch_ms()
        try:
            worker.send({"op": "run", "value": params, "env": dict(activation_env)})
            reply = session.wait_reply(start + timeout_s)
        except TimeoutError:
            return self._fail(
                worker, session, MSG_TIMEOUT.format(ms=action.timeout_ms), start_ms, wait_ms,
                init_ms=init_ms, timed_out=True,
            )
        except OSError:
            reply = None
        if reply is None:
            return self._fail(worker, session, MSG_ABNORMAL_RUN, start_ms, wait_ms, init_ms=init_ms)
        end_ms = _epoch_ms()
        status = reply.header.get("status")
        if status == "memory":
            return self._fail(worker, session, MSG_MEMORY, start_ms, wait_ms, init_ms=init_ms)
        if status == "developer":
            message = str(reply.header.get("error") or MSG_ABNORMAL_RUN)
            return self._fail(worker, session, message, start_ms, wait_ms, init_ms=init_ms)
        session.drain(_LOG_GRACE_SECONDS)
        state, result = _judge(reply)
        outcome = RunOutcome(
            status=state, result=result, logs=session.logs.finish(), start_ms=start_ms,
            end_ms=end_ms, init_ms=init_ms, wait_ms=wait_ms, timed_out=False, size=reply.size,
        )
        if state == "action developer error" or not session.logs.done:
            self._discard(worker)
        else:
            self._give_back(worker)
        return outcome

    def _init_failed(self, worker, session, reply, start_ms, init_ms, wait_ms) -> RunOutcome:
        if reply is None:
            message = MSG_ABNORMAL_INIT
        elif reply.header.get("memory"):
            message = MSG_MEMORY
        else:
            message = MSG_INIT_FAILED.format(msg=reply.header.get("error", ""))
        return self._fail(worker, session, message, start_ms, wait_ms, init_ms=init_ms)

    def _fail(self, worker, session, message, start_ms, wait_ms, *, init_ms, timed_out=False):
        """End an activation as a developer error; the worker is killed, its last output read."""
        end_ms = _epoch_ms()
        self._discard(worker, keep_sockets=True)
        session.drain(_DRAIN_AFTER_KILL_SECONDS)
        worker.close()
        if message in (MSG_ABNORMAL_RUN, MSG_ABNORMAL_INIT) and _died_of_memory(
            session.logs.stderr_tail
        ):
            message = MSG_MEMORY
        return RunOutcome(
            status="action developer error", result={"error": message},
            logs=session.logs.finish(), start_ms=start_ms, end_ms=end_ms, init_ms=init_ms,
            wait_ms=wait_ms, timed_out=timed_out,
        )

    @staticmethod
    def _internal_error(message: str, began_ms: int) -> RunOutcome:
        now = _epoch_ms()
        return RunOutcome(
            status="whisk internal error", result={"error": message}, logs=[], start_ms=began_ms,
            end_ms=now, init_ms=None, wait_ms=now - began_ms, timed_out=False,
        )

    def _unpack(self, action: ActionCode) -> Path:
        """The action's zip, extracted once per version; ValueError when it is not one."""
        target = self._workdir / "zips" / hashlib.sha256(action.key.encode()).hexdigest()
        if target.is_dir():
            return target
        try:
            data = base64.b64decode(action.code.strip(), validate=True)
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED_BYTES:
                    raise ValueError("the zip holds more than the action may unpack")
                partial = target.with_name(target.name + f".{secrets.token_hex(4)}")
                # extractall keeps every member inside ``partial`` (no absolute or .. paths).
                archive.extractall(partial)
        except (binascii.Error, zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"the code is not a valid zip file: {exc}") from None
        try:
            partial.rename(target)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)  # a concurrent cold start got there first
            if not target.is_dir():
                raise ValueError("the zip could not be unpacked") from None
        return target

    # --- processes -----------------------------------------------------------------------------

    def _zygote_for_call(self) -> _Zygote:
        with self._zygote_lock:
            if self._closed:
                raise RuntimeUnavailable("the runtime is closed")
            if self._zygote is None or not self._zygote.alive:
                if self._zygote is not None:
                    self._zygote.stop()
                self._generation += 1
                self._zygote = _Zygote(self._workdir, self._generation)
            return self._zygote

    def _spawn(self, action: ActionCode) -> _Worker:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": str(self._workdir)}
        env.update(dict(action.env))
        request = {
            "op": "spawn",
            "kind": "python" if action.kind in PYTHON_KINDS else "node",
            "memory_mb": action.memory_mb,
            "env": env,
            "cwd": str(self._workdir),
            "node": self._node,
            "runner": str(RUNNERS / "noderunner.js"),
        }
        pairs = [socket.socketpair() for _ in range(3)]
        ours = tuple(pair[0] for pair in pairs)
        try:
            zygote = self._zygote_for_call()
            answer = zygote.call(request, [pair[1].fileno() for pair in pairs])
        except BaseException:
            for sock in ours:
                sock.close()
            raise
        finally:
            for pair in pairs:
                pair[1].close()
        if "pid" not in answer:
            for sock in ours:
                sock.close()
            raise RuntimeUnavailable(answer.get("error", "the fork server gave no process"))
        return _Worker(action.key, int(answer["pid"]), ours, zygote.generation)

    def _kill(self, worker: _Worker) -> int | None:
        """Kill and reap the worker through the zygote; its wait status, when known."""
        with self._zygote_lock:
            zygote = self._zygote
        if zygote is None or zygote.generation != worker.generation or not zygote.alive:
            return None  # that zygote is gone, and its workers died with it
        try:
            return zygote.call({"op": "kill", "pid": worker.pid}).get("status")
        except (OSError, ValueError, RuntimeUnavailable):
            return None

    def _discard(self, worker: _Worker, *, keep_sockets: bool = False) -> int | None:
        status = self._kill(worker)
        if not keep_sockets:
            worker.close()
        return status

    def _take_warm(self, key: str) -> _Worker | None:
        with self._lock:
            workers = self._idle.get(key)
            if not workers:
                return None
            worker = workers.pop()
            if not workers:
                del self._idle[key]
            return worker

    def _give_back(self, worker: _Worker) -> None:
        worker.last_used = time.monotonic()
        with self._lock:
            workers = self._idle.setdefault(worker.key, [])
            if not self._closed and len(workers) < self.max_warm_per_action:
                workers.append(worker)
                return
            if not workers:
                del self._idle[worker.key]
        self._discard(worker)

    def _reap_loop(self) -> None:
        interval = max(0.05, min(1.0, self.idle_seconds / 4))
        while not self._stop_reaper.wait(interval):
            self.reap_idle()

    def reap_idle(self) -> int:
        """Kill warm processes idle for longer than ``idle_seconds``; how many were killed."""
        cutoff = time.monotonic() - self.idle_seconds
        expired: list[_Worker] = []
        with self._lock:
            for key in list(self._idle):
                keep = [w for w in self._idle[key] if w.last_used > cutoff]
                expired += [w for w in self._idle[key] if w.last_used <= cutoff]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for worker in expired:
            self._discard(worker)
        return len(expired)


def _judge(reply: _Reply) -> tuple[str, dict | list]:
    """OpenWhisk's reading of what ``main`` produced: success, application or developer error."""
    if reply.size > MAX_RESULT_BYTES:
        text = bytes(reply.body).decode("utf-8", "ignore")
        message = MSG_TRUNCATED.format(size=reply.size, limit=MAX_RESULT_BYTES, text=text)
        return "application error", {"error": message}
    text = bytes(reply.body).decode("utf-8", "replace")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return ("application error" if "error" in value else "success"), value
    if isinstance(value, list):
        return "success", value
    return "action developer error", {"error": MSG_INVALID.format(text=text)}


def _died_of_memory(stderr_tail: bytes) -> bool:
    """Whether a process that died on its own ran out of memory, judged by its last words.

    Its exit signal alone cannot tell: node aborts (SIGABRT) on its heap limit, as abort() does.
    """
    return any(marker in stderr_tail for marker in _MEMORY_MARKERS)
