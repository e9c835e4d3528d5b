#!/bin/sh
# The image's entrypoint: the first argument names the role (default: serve, all three in one
# container). OWACTION_ROLE tells `owaction healthcheck`, which Docker starts as a process of its
# own, what this container runs.
set -e
role="${1:-serve}"
if [ "$#" -gt 0 ]; then shift; fi
case "$role" in
  serve|rest|grpc|worker) OWACTION_ROLE="$role"; export OWACTION_ROLE; exec python -m owaction "$role" "$@" ;;
  migrate)                exec python -m owaction db migrate "$@" ;;
  emulator)               echo "the emulator is not in this image: docker build --target emulator -t owaction-emulator ." >&2
                          exit 2 ;;
  *)                      exec python -m owaction "$role" "$@" ;;
esac
