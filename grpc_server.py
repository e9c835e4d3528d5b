"""Entry point of the gRPC process: ``python grpc_server.py``."""

from owaction.config import settings_or_exit
from owaction.rpc.server import serve

if __name__ == "__main__":
    raise SystemExit(serve(settings_or_exit()))
