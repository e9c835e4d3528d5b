#!/bin/sh
# One image, several servers: the first argument says which.
set -e
case "${1:-rest}" in
  rest)     shift; exec gunicorn -c /app/gunicorn.conf.py --chdir /app wsgi:app "$@" ;;
  grpc)     shift; exec python /app/grpc_server.py "$@" ;;
  worker)   shift; exec owaction worker "$@" ;;
  emulator) shift; exec owaction emulator --host 0.0.0.0 "$@" ;;
  migrate)  shift; exec owaction db migrate "$@" ;;
  *)        exec owaction "$@" ;;
esac
