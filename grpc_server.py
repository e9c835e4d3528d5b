"""Entry point of the gRPC process: ``python grpc_server.py``, the same as ``owaction grpc``."""

from owaction.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["grpc"]))
