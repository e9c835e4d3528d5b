"""Fork server for the emulator's action processes, and the python:3 action runner.

Started once per Runtime as ``python -I zygote.py`` with the listening Unix socket on fd 3 and a
pipe on stdin. The emulator (which is gevent-patched and must never fork itself) connects once per
request and sends one JSON line:

- ``{"op": "spawn", "kind": "python"|"node", "memory_mb": N, "env": {...}, "cwd": "...",
  "node": "/path/node", "runner": "/path/noderunner.js"}`` with three file descriptors attached
  (SCM_RIGHTS): the worker's control socket, stdout and stderr. Reply: ``{"pid": N}``.
- ``{"op": "kill", "pid": N}``: kill the worker's process group and reap it. Reply:
  ``{"status": <raw waitpid status>}``. Workers are only reaped here, so a pid can never be
  recycled while the emulator may still ask to kill it.

EOF on stdin means the emulator is gone: every worker is killed and the zygote exits.

A python worker is a fork of this process (imports already loaded, so a cold start costs a fork
rather than an interpreter start). It speaks JSON lines on fd 3, never on stdout/stderr, so an
action that prints JSON cannot forge its result:

- in ``{"op": "init", "code" | "dir", "main", "sentinel"}`` -> out ``{"ok": true}`` or
  ``{"ok": false, "error": msg}``; ``dir`` is an unzipped action, whose ``__main__.py`` is run
  with the directory first on ``sys.path``.
- in ``{"op": "run", "value", "env"}`` -> out ``{"status": "result", "size": N}`` plus N bytes of
  what ``main`` produced, ``{"status": "memory"}``, or ``{"status": "developer", "error": msg}``.

After each run (and after a failed init) the sentinel line is written to stdout and stderr so the
emulator knows where this activation's logs end.
"""

import ctypes
import io
import json
import os
import resource
import selectors
import signal
import socket
import sys
import traceback
import types

_PR_SET_PDEATHSIG = 1
_MIB = 1024 * 1024


def _die_with_parent() -> None:
    # A worker must not outlive the zygote (and so the emulator), even if the zygote is SIGKILLed.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _read_line(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk or len(data) > limit:
            break
        data += chunk
    return data


# --- the python:3 worker ------------------------------------------------------------------------


class _Channel:
    """The control socket on fd 3: JSON lines in, JSON header (+ raw body) out."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.reader = self.sock.makefile("rb")

    def receive(self):
        line = self.reader.readline()
        return json.loads(line) if line else None

    def send(self, header: dict, body: bytes = b"") -> None:
        self.sock.sendall(json.dumps(header).encode() + b"\n" + body)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _write_sentinels(sentinel: bytes) -> None:
    _flush_stdio()
    for fd in (1, 2):
        try:
            os.write(fd, sentinel)
        except OSError:
            pass  # the action closed its own stdout; the emulator stops waiting at EOF


def _print_action_error(exc: BaseException, runner_frames: int) -> None:
    """The traceback as the action's author would want it: without the runner's own frames."""
    tb = exc.__traceback__
    for _ in range(runner_frames):
        tb = tb.tb_next if tb is not None else None
    traceback.print_exception(type(exc), exc, tb)


def _load_action(message: dict, main_name: str):
    filename, code = "main__.py", message.get("code")
    if message.get("dir"):
        # As the python runtime runs a zip action: its own modules importable, cwd its folder.
        sys.path.insert(0, message["dir"])
        os.chdir(message["dir"])
        filename = os.path.join(message["dir"], "__main__.py")
        if not os.path.isfile(filename):
            raise FileNotFoundError("the zip has no __main__.py")
        with open(filename, encoding="utf-8") as source:
            code = source.read()
    module = types.ModuleType("main__")
    module.__file__ = filename
    sys.modules["main__"] = module
    exec(compile(code, filename, "exec"), module.__dict__)  # noqa: S102 - running it is the point
    entry = module.__dict__.get(main_name)
    if not callable(entry):
        raise NameError(f"the action defines no function '{main_name}'")
    return entry


def _encode_result(result) -> bytes:
    try:
        return json.dumps(result, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        # Not JSON-serialisable: hand the emulator what it was, which it reports as not JSON.
        return repr(result).encode("utf-8", "replace")


def python_worker() -> None:
    """Serve init and run requests for one python:3 action until the emulator hangs up."""
    sys.stdout = io.TextIOWrapper(
        open(1, "wb", closefd=False), encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
        line_buffering=True,
    )
    sys.stderr = io.TextIOWrapper(
        open(2, "wb", closefd=False), encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
        line_buffering=True,
    )
    channel = _Channel(3)
    entry = None
    sentinel = b""
    while True:
        message = channel.receive()
        if message is None:
            return
        if message["op"] == "init":
            sentinel = message["sentinel"].encode() + b"\n"
            try:
                entry = _load_action(message, message.get("main") or "main")
            except MemoryError:
                _write_sentinels(sentinel)
                channel.send({"ok": False, "memory": True})
                return
            except Exception as exc:  # noqa: BLE001 - any failure of user code fails the init
                _print_action_error(exc, runner_frames=2)
                _write_sentinels(sentinel)
                channel.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
                return
            channel.send({"ok": True})
            continue
        os.environ.update(message.get("env") or {})
        try:
            try:
                result = entry(message.get("value") or {})
            except MemoryError:
                raise
            # OpenWhisk's python runtime turns an exception into an application error.
            except Exception as exc:  # noqa: BLE001
                _print_action_error(exc, runner_frames=1)
                result = {"error": str(exc)}
            body = _encode_result(result)
            del result
        except MemoryError:
            result = body = None
            _write_sentinels(sentinel)
            channel.send({"status": "memory"})
            return
        _write_sentinels(sentinel)
        channel.send({"status": "result", "size": len(body)}, body)


# --- the fork server -----------------------------------------------------------------------------


def _setup_child(fds: list[int], request: dict, keep_closed: list[int]) -> None:
    os.setsid()
    _die_with_parent()
    for fd in keep_closed:
        try:
            os.close(fd)
        except OSError:
            pass
    ctrl, out, err = fds
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(ctrl, 3)
    os.closerange(4, 65536)
    # The emulator's ends may be non-blocking (gevent makes them so), and the flag lives in the
    # shared file description: the action and runner expect ordinary blocking stdio.
    for fd in (1, 2, 3):
        os.set_blocking(fd, True)
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    cwd = request.get("cwd")
    if cwd:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(request.get("env") or {})


def _spawn(request: dict, fds: list[int], inherited: list[int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        _setup_child(fds, request, inherited)
        if request["kind"] == "python":
            limit = int(request["memory_mb"]) * _MIB
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            python_worker()
            code = 0
        else:
            argv = [
                request["node"],
                f"--max-old-space-size={int(request['memory_mb'])}",
                request["runner"],
            ]
            os.execve(request["node"], argv, dict(os.environ))
    except SystemExit as exc:  # the action called sys.exit: the process ends like OpenWhisk's
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on stderr, where the activation logs see it
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001,S110 - nothing left to report with
            pass
    finally:
        _flush_stdio()
        os._exit(code)
    return 0


def _kill(pid: int, children: set[int]) -> int | None:
    if pid not in children:
        return None
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    children.discard(pid)
    return status


def _handle(conn: socket.socket, listener: socket.socket, children: set[int]) -> None:
    conn.settimeout(10)
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            break
        data += more
    try:
        request = json.loads(data)
        if request["op"] == "spawn":
            if len(fds) != 3:
                raise ValueError("spawn needs three file descriptors")
            pid = _spawn(request, fds, [listener.fileno(), conn.fileno(), 0])
            children.add(pid)
            reply = {"pid": pid}
        elif request["op"] == "kill":
            reply = {"status": _kill(int(request["pid"]), children)}
        else:
            reply = {"error": f"unknown op {request['op']!r}"}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for fd in fds:
            os.close(fd)
    conn.sendall(json.dumps(reply).encode() + b"\n")


def serve(listen_fd: int) -> None:
    listener = socket.socket(fileno=listen_fd)
    listener.setblocking(True)
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "parent":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return
                    continue
                conn, _ = listener.accept()
                with conn:
                    try:
                        _handle(conn, listener, children)
                    except OSError as exc:  # a client that went away must not stop the server
                        print(f"zygote: request failed: {exc}", file=sys.stderr)
    finally:
        for pid in list(children):
            _kill(pid, children)


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(int(sys.argv[1]))
