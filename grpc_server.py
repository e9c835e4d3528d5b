"""Entry point of the gRPC process: ``python grpc_server.py``."""

import os

# gRPC's C core writes its own log lines to stderr, outside Python logging and the AAA format;
# silence it unless an operator asks for it while debugging (GRPC_VERBOSITY=DEBUG).
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from owaction.config import settings_or_exit  # noqa: E402
from owaction.rpc.server import serve  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(serve(settings_or_exit()))
