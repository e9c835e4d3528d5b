"""``python -m openwhisk_emulator``: gevent patches the standard library before anything else."""

from gevent import monkey

monkey.patch_all()

from openwhisk_emulator.server import main  # noqa: E402 - must come after patch_all

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
