"""Regenerate the protobuf and gRPC code from ``proto/openwhisk_action.proto``.

``python -m owaction.rpc.codegen`` (``make proto``) writes ``openwhisk_action_pb2.py`` and
``openwhisk_action_pb2_grpc.py`` into this package; ``proto/`` keeps the one ``.proto`` (an
installed server serves its contract through reflection). protoc emits
``import openwhisk_action_pb2``, which only works with the output folder on ``sys.path``; the
one fix applied makes it package-relative.
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto" / "openwhisk_action.proto"
PACKAGE_DIR = Path(__file__).resolve().parent
STEM = "openwhisk_action"
GENERATED = (f"{STEM}_pb2.py", f"{STEM}_pb2_grpc.py")

_ABSOLUTE_IMPORT = f"import {STEM}_pb2 as "
_RELATIVE_IMPORT = f"from . import {STEM}_pb2 as "


class CodegenError(RuntimeError):
    """protoc failed or produced something unexpected."""


def generate(out_dir: Path, proto: Path = PROTO) -> list[Path]:
    """Write the generated files for ``proto`` into ``out_dir``; returns their paths."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as work:
        # protoc records the path it was given in the descriptor, so compile a copy named
        # exactly "openwhisk_action.proto" from a fixed include root: the output then does not
        # depend on where the checkout lives.
        source = Path(work) / "src"
        source.mkdir()
        shutil.copyfile(proto, source / f"{STEM}.proto")
        target = Path(work) / "out"
        target.mkdir()
        code = protoc.main([
            "grpc_tools.protoc",
            f"-I{source}",
            f"-I{well_known}",
            f"--python_out={target}",
            f"--grpc_python_out={target}",
            f"{STEM}.proto",
        ])
        if code != 0:
            raise CodegenError(f"protoc failed with exit code {code}")
        grpc_file = target / f"{STEM}_pb2_grpc.py"
        text = grpc_file.read_text()
        if _ABSOLUTE_IMPORT not in text:
            raise CodegenError(f"generated gRPC code lacks {_ABSOLUTE_IMPORT!r}; protoc changed")
        grpc_file.write_text(text.replace(_ABSOLUTE_IMPORT, _RELATIVE_IMPORT, 1))
        written = []
        for name in GENERATED:
            shutil.copyfile(target / name, out_dir / name)
            written.append(out_dir / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR,
                        help="output folder (default: the owaction.rpc package)")
    args = parser.parse_args(argv)
    try:
        written = generate(args.out)
    except CodegenError as exc:
        print(f"codegen: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
