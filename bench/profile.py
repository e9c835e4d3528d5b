"""py-spy samples of one server process under load, summed by owaction function.

A sample is charged to the innermost owaction frame on its stack: the time spent in that function
or in the libraries it called (requests, PyDAL, sqlite3, logging), but not under another owaction
function. That answers "which of our functions does the time go to".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"\A(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)\Z")


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 250) -> Path | None:
    """Raw (collapsed) stacks of ``pid`` for ``seconds``; None when py-spy is missing or fails."""
    binary = py_spy()
    if binary is None:
        return None
    proc = subprocess.run(
        [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
         "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking"],
        capture_output=True, text=True, timeout=seconds + 60, check=False,
    )
    return out if proc.returncode == 0 and out.exists() else None


def _function(frame: str) -> tuple[str, str] | None:
    match = _FRAME.match(frame.strip())
    if not match:
        return None
    return match.group("func"), match.group("file")


def top_functions(raw: Path, *, package: str = "owaction", count: int = 5) -> dict:
    """The ``count`` owaction functions with the most samples charged to them (see above)."""
    marker = f"/{package}/"
    charged: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        n = int(samples)
        total += n
        for frame in reversed(stack.split(";")):
            parsed = _function(frame)
            if parsed and (marker in parsed[1] or parsed[1].startswith(marker[1:])):
                func, file = parsed
                module = file[file.find(marker) + 1:].removesuffix(".py").replace("/", ".")
                charged[f"{module}.{func}"] += n
                break
        else:
            charged["(outside owaction: gunicorn, gevent hub, idle)"] += n
    top = [{"function": name, "samples": n, "share": round(n / total, 3) if total else 0}
           for name, n in charged.most_common() if not name.startswith("(")][:count]
    outside = charged.get("(outside owaction: gunicorn, gevent hub, idle)", 0)
    return {"samples": total, "top": top,
            "outside_share": round(outside / total, 3) if total else 0}
