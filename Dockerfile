# owaction: WaddleBot's OpenWhisk action module. The default target is the production image; the
# OpenWhisk emulator (a development tool) is a target of its own and never in that image.
#
#   docker build -t owaction .
#   docker run -d -p 8082:8082 -p 50062:50062 --env-file deploy/owaction.env \
#     --read-only --stop-timeout 90 owaction                 # REST, gRPC and the worker
#   docker run ... owaction rest | grpc | worker | migrate   # one role per container (Kubernetes)
#   docker build --target emulator -t owaction-emulator . && docker run -p 3233:3233 owaction-emulator
#
# Stopping drains in-flight calls for up to 75 s (WEB_GRACEFUL_TIMEOUT, GRPC_GRACE): give it
# `--stop-timeout 90` / `docker stop -t 90`, since Docker's default of 10 s kills them.

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY requirements.txt pyproject.toml README.md ./
COPY owaction ./owaction
# Installed under /install and copied as one directory, so no wheel files stay in any layer.
RUN pip install --no-cache-dir --no-warn-script-location --prefix=/install -r requirements.txt \
 && pip install --no-cache-dir --no-warn-script-location --prefix=/install --no-deps .

FROM python:3.11.11-slim-bookworm AS emulator
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app
COPY --from=build /install /usr/local
WORKDIR /app
COPY openwhisk_emulator ./openwhisk_emulator
USER 65534:65534
EXPOSE 3233
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3233/api/v1', timeout=4)"]
ENTRYPOINT ["python", "-m", "openwhisk_emulator", "--host", "0.0.0.0"]
CMD ["--port", "3233", "--seed", "/app/openwhisk_emulator/examples"]

FROM python:3.11.11-slim-bookworm AS module
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIND_HOST=0.0.0.0 \
    DATA_DIR=/var/lib/owaction \
    LOG_DIR=/var/log/waddlebotlog \
    GUNICORN_CMD_ARGS="--worker-tmp-dir /dev/shm"
# gunicorn's worker heartbeat files go to /dev/shm (a tmpfs even with --read-only); everything
# else the module writes is under the two volumes.
RUN groupadd --system --gid 10001 owaction \
 && useradd --system --uid 10001 --gid owaction --home-dir /app --shell /usr/sbin/nologin owaction \
 && mkdir -p /app /var/lib/owaction /var/log/waddlebotlog \
 && chown owaction:owaction /var/lib/owaction /var/log/waddlebotlog
COPY --from=build /install /usr/local
WORKDIR /app
COPY deploy/docker-entrypoint.sh /usr/local/bin/owaction-entrypoint
VOLUME ["/var/lib/owaction", "/var/log/waddlebotlog"]
USER 10001:10001
EXPOSE 8082 50062 9462 9463
STOPSIGNAL SIGTERM
# Checks the role this container runs (REST /health, gRPC health, the worker's heartbeat).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "-m", "owaction", "healthcheck"]
ENTRYPOINT ["owaction-entrypoint"]
CMD ["serve"]
