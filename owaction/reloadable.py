"""A configuration file that is re-read when it changes and on demand (SIGHUP).

A subclass says how to parse the text (``parse``) and which error means "this file cannot be
used" (``file_error``). A version that does not read, parse or validate is refused with one
ERROR line naming the file and the reason, and the previous entries stay in force; at start-up
there is nothing to keep, so it raises instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from owaction.logs import aaa

_RELOAD_CHECK_SECONDS = 1.0


class ReloadableFile:
    """Entries parsed from ``path``; safe to share between threads and greenlets."""

    what = "entries"  # names the log lines (``<what>_reload``) and the counts in them
    file_error: type[Exception] = ValueError

    def __init__(self, path: str = ""):
        self.path = path
        self.entries: dict[str, Any] = {}
        self._signature: tuple | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._listeners: list = []
        if path:
            self.reload(initial=True)

    def parse(self, text: str) -> dict[str, Any]:
        """The entries of the file's text; raises ``file_error`` naming each problem."""
        raise NotImplementedError

    def on_change(self, listener) -> None:
        """Call ``listener(self)`` after every successful reload that changed something."""
        self._listeners.append(listener)

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, *, initial: bool = False) -> bool:
        """Re-read the file. True if the entries changed; a bad file keeps the old ones."""
        if not self.path:
            return False
        with self._lock:
            signature = self._stat()
            try:
                with open(self.path, encoding="utf-8") as fh:
                    text = fh.read()
                entries = self.parse(text)
            except (OSError, UnicodeDecodeError, self.file_error) as exc:
                self._signature = signature
                message = exc if isinstance(exc, self.file_error) else (
                    f"cannot read {self.path}: {exc}")
                aaa("SYSTEM", f"{self.what}_reload", "REFUSED", level=logging.ERROR,
                    msg=f"{message}; keeping the previous {len(self.entries)} {self.what}")
                if initial:
                    raise self.file_error(str(message)) from None
                return False
            self._signature = signature
            changed = entries != self.entries
            self.entries = entries
        if changed:
            aaa("SYSTEM", f"{self.what}_reload", "SUCCESS", file=self.path,
                **{self.what: len(entries)})
            for listener in self._listeners:
                listener(self)
        return changed

    def maybe_reload(self) -> None:
        """Reload if the file changed; cheap enough to call on every request."""
        if not self.path:
            return
        now = time.monotonic()
        if now - self._checked_at < _RELOAD_CHECK_SECONDS:
            return
        self._checked_at = now
        if self._stat() != self._signature:
            self.reload()
