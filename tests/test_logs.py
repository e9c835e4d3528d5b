"""AAA logging: the line format, quoting, JSON lines, the file, syslog, and the fallback."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from owaction.config import load_settings
from owaction.logs import LINE_RE, AAAFormatter, aaa, quote, setup_logging
from tests.conftest import TEST_SECRET


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def settings(tmp_path, **env):
    return load_settings({"MODULE_SECRET_KEY": TEST_SECRET, "DATA_DIR": str(tmp_path),
                          "API_KEYS": "svc=api-key-value-123456", **env})


def test_a_line_has_the_contract_shape_and_quotes_what_needs_it(tmp_path, restore_logging,
                                                                capsys):
    setup_logging(settings(tmp_path), process="t")
    aaa("AUDIT", "invoke_action", "SUCCESS", community=42, user="u 1", time="87ms",
        activation_id="abc", note='say "hi"\nbye')
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and LINE_RE.match(line), line
    assert " INFO openwhisk_action_module:1.0.0 AUDIT community=42 user=\"u 1\" " \
           "action=invoke_action result=SUCCESS time=87ms activation_id=abc " in line
    assert line.endswith('note="say \\"hi\\"\\nbye"')
    file_line = (tmp_path / "log" / "t.log").read_text().strip()
    assert file_line == line


def test_records_without_an_event_type_are_system_or_error_lines(tmp_path, restore_logging,
                                                                 capsys):
    setup_logging(settings(tmp_path), process="t")
    logging.getLogger("some.library").warning("a %s warning", "library")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(LINE_RE.match(line) for line in lines), lines
    assert " SYSTEM " in lines[0] and 'msg="a library warning"' in lines[0]
    assert " ERROR " in lines[1] and 'exception="ValueError: boom"' in lines[1]


def test_json_format_carries_the_same_fields(tmp_path, restore_logging, capsys):
    setup_logging(settings(tmp_path, LOG_FORMAT="json"), process="t")
    aaa("AUTH", "issue_token", "DENIED", user="svc", address="127.0.0.1")
    event = json.loads(capsys.readouterr().err.strip())
    assert event["event"] == "AUTH" and event["action"] == "issue_token"
    assert event["result"] == "DENIED" and event["user"] == "svc"
    assert event["module"] == "openwhisk_action_module" and event["address"] == "127.0.0.1"


def test_secrets_are_scrubbed_from_any_line(tmp_path, restore_logging, capsys):
    setup_logging(settings(tmp_path), process="t")
    logging.getLogger("careless").info("key=%s secret=%s", "api-key-value-123456", TEST_SECRET)
    out = capsys.readouterr().err
    assert "api-key-value-123456" not in out and TEST_SECRET not in out and "********" in out


def test_a_secret_in_an_aaa_field_is_scrubbed_and_the_other_fields_kept(tmp_path,
                                                                        restore_logging, capsys):
    setup_logging(settings(tmp_path), process="t")
    aaa("AUDIT", "invoke_action", "SUCCESS", user="svc", status="success",
        note=f"sent {TEST_SECRET} by mistake", other="api-key-value-123456")
    aaa("AUDIT", "invoke_action", "SUCCESS", user="svc", status="success", note="clean")
    first, second = capsys.readouterr().err.strip().splitlines()
    assert TEST_SECRET not in first and "api-key-value-123456" not in first
    assert 'note="sent ******** by mistake" other=********' in first
    assert "user=svc" in first and "status=success" in first
    assert second.endswith("user=svc action=invoke_action result=SUCCESS status=success note=clean")


def test_each_line_shows_its_own_second(tmp_path):
    formatter = AAAFormatter("m")
    stamps = []
    for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.5, 1_699_999_999.0):
        record = logging.LogRecord("x", logging.INFO, "", 0, "", None, None)
        record.created, record.msecs = created, (created % 1) * 1000
        stamps.append(formatter.format(record)[1:24])
    assert stamps == ["2023-11-14 22:13:20.250", "2023-11-14 22:13:20.750",
                      "2023-11-14 22:13:21.500", "2023-11-14 22:13:19.000"]


def test_an_unwritable_log_dir_falls_back_to_the_console_with_a_warning(tmp_path,
                                                                        restore_logging, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    warnings = setup_logging(settings(tmp_path, LOG_DIR=str(blocker / "log")), process="t")
    assert warnings and "not writable" in warnings[0]
    err = capsys.readouterr().err
    assert "WARNING" in err and "logging to the console only" in err
    aaa("SYSTEM", "start", "SUCCESS")
    assert "action=start" in capsys.readouterr().err


def test_syslog_receives_the_same_line(tmp_path, restore_logging):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    try:
        setup_logging(settings(tmp_path, ENABLE_SYSLOG="true", SYSLOG_HOST="127.0.0.1",
                               SYSLOG_PORT=str(receiver.getsockname()[1]),
                               SYSLOG_FACILITY="LOCAL3"), process="t")
        aaa("SYSTEM", "start", "SUCCESS", version="1")
        datagram = receiver.recv(65536).decode()
    finally:
        receiver.close()
    priority = int(datagram[1:datagram.index(">")])
    assert priority == 19 * 8 + 6  # local3.info
    assert LINE_RE.match(datagram[datagram.index(">") + 1:].rstrip("\x00"))


@pytest.mark.parametrize(("value", "shown"), [
    (None, "-"), ("", "-"), ("plain", "plain"), ("two words", '"two words"'),
    ("a=b", '"a=b"'), (5, "5"),
    # Control characters never reach a line raw: a path with a NUL or a terminal escape.
    ("/api/v1/executions/abc\x00def", '"/api/v1/executions/abc\\u0000def"'),
    ("a\x1b[31mb", '"a\\u001b[31mb"'), ("a\x7fb", '"a\\u007fb"'),
])
def test_quote(value, shown):
    assert quote(value) == shown
    assert quote(value) == shown  # the second time from the cache of short values


def test_a_traceback_is_kept_on_one_line_and_scrubbed(tmp_path, restore_logging, capsys):
    setup_logging(settings(tmp_path), process="t")
    try:
        raise ValueError(f"boom with {TEST_SECRET}")
    except ValueError:
        logging.getLogger("x").exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and LINE_RE.match(lines[0]), lines
    assert 'traceback="Traceback (most recent call last):\\n' in lines[0]
    assert "test_a_traceback_is_kept_on_one_line_and_scrubbed" in lines[0]
    assert TEST_SECRET not in lines[0] and "ValueError: boom with ********" in lines[0]


def _rotating(path, max_bytes: int) -> logging.Logger:
    from owaction.logs import SizeRotatingFileHandler

    handler = SizeRotatingFileHandler(path, maxBytes=max_bytes, backupCount=50, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"owtest.rotating.{path.name}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger


def _files(path) -> list:
    return sorted(path.parent.glob(path.name + "*"))


def test_the_log_file_rotates_at_its_size_and_keeps_every_line(tmp_path):
    path = tmp_path / "rot.log"
    logger = _rotating(path, 1000)
    lines = [f"line {i:04d} " + "x" * 40 for i in range(200)]  # 51 characters a line
    for line in lines:
        logger.info(line)
    logger.handlers[0].close()
    files = _files(path)
    assert len(files) >= 10
    assert all(f.stat().st_size < 1000 for f in files)  # none grew past the limit
    # Each full file holds as many lines as fit: it rotated when the next would not.
    assert all(f.stat().st_size > 1000 - 52 for f in files if f != path)
    written = sorted(line for f in files for line in f.read_text().splitlines())
    assert written == lines


def test_another_writer_growing_the_file_still_rotates_it_near_its_size(tmp_path):
    from owaction.logs import SizeRotatingFileHandler

    path = tmp_path / "shared.log"
    logger = _rotating(path, 20_000)
    recheck = SizeRotatingFileHandler.RECHECK_RECORDS
    theirs = 74  # characters of each of the other writer's lines
    for i in range(8 * recheck):
        logger.info("ours %05d", i)
        with open(path, "a", encoding="utf-8") as other:  # another process appending to it
            other.write(f"theirs {i:05d} {'y' * 60}\n")
    logger.handlers[0].close()
    files = _files(path)
    # About 174 KB in all, and this handler wrote only 22 KB of it: the others' lines count too.
    assert len(files) >= 5
    # Never before the limit; late by at most the other writer's lines between two looks.
    assert all(20_000 - 11 <= f.stat().st_size < 20_000 + recheck * theirs
               for f in files if f != path)


def _batched(path, interval: float, max_bytes: int = 0) -> logging.Logger:
    from owaction.logs import LineBatches

    logger = _rotating(path, max_bytes)
    logger.handlers[0].batches = LineBatches(interval)
    return logger


def test_batched_lines_reach_the_file_within_the_interval_each_thread_in_order(tmp_path):
    import threading
    import time

    path = tmp_path / "batched.log"
    logger = _batched(path, 0.05)

    def lines(t: int) -> None:
        for i in range(100):
            logger.info("t%d line %03d", t, i)

    threads = [threading.Thread(target=lines, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(path.read_text().splitlines()) < 800:
        time.sleep(0.02)  # written by the batches' own thread, not by a flush of ours
    written = path.read_text().splitlines()
    assert len(written) == 800
    for t in range(8):
        assert [w for w in written if w.startswith(f"t{t} ")] == [
            f"t{t} line {i:03d}" for i in range(100)]
    logger.handlers[0].close()


def test_batched_lines_still_rotate_at_the_size_and_a_flush_writes_the_rest(tmp_path):
    path = tmp_path / "batched-rot.log"
    logger = _batched(path, 60, max_bytes=2000)  # the thread never gets to it: flushes do
    lines = [f"line {i:04d} " + "z" * 30 for i in range(300)]  # 41 characters a line
    for n, line in enumerate(lines, 1):
        logger.info(line)
        if n % 20 == 0:
            logger.handlers[0].flush()  # a batch of 20 lines, 820 characters
    logger.handlers[0].close()  # writes what is left, as logging.shutdown does at exit
    files = _files(path)
    assert len(files) >= 6
    assert all(f.stat().st_size <= 2000 for f in files)
    assert sorted(w for f in files for w in f.read_text().splitlines()) == lines


BATCHED_PROCESS = """
import os, sys, threading
from owaction.config import load_settings
from owaction.logs import aaa, setup_logging

settings = load_settings({"MODULE_SECRET_KEY": sys.argv[2], "LOG_DIR": sys.argv[1],
                          "LOG_FLUSH_INTERVAL_MS": "1000"})
setup_logging(settings, process="batched")

def lines(who):
    for i in range(200):
        aaa("AUDIT", "invoke_action", "SUCCESS", user=f"{who}-{i}")

lines("parent-before-fork")
child = os.fork()
if child == 0:  # as a gunicorn worker: its own lines, none of its parent's pending ones twice
    threads = [threading.Thread(target=lines, args=(f"child{t}",)) for t in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    sys.exit(0)  # a normal exit: logging.shutdown writes what is pending
lines("parent-after-fork")
os.waitpid(child, 0)
"""


def test_a_batched_process_and_its_forked_child_write_every_line_once(tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", BATCHED_PROCESS, str(tmp_path), TEST_SECRET],
                   check=True, timeout=60, capture_output=True)
    users = [line.split(" user=")[1].split(" ")[0]
             for line in (tmp_path / "batched.log").read_text().splitlines()
             if " AUDIT " in line]
    expected = [f"{who}-{i}" for who in ("parent-before-fork", "parent-after-fork",
                                         "child0", "child1", "child2", "child3")
                for i in range(200)]
    assert sorted(users) == sorted(expected)


def test_the_flush_interval_is_bounded(tmp_path):
    from owaction.config import ConfigError

    assert settings(tmp_path).log_flush_interval_ms == 0
    assert settings(tmp_path, LOG_FLUSH_INTERVAL_MS="20").log_flush_interval_ms == 20
    with pytest.raises(ConfigError, match="LOG_FLUSH_INTERVAL_MS"):
        settings(tmp_path, LOG_FLUSH_INTERVAL_MS="5000")
