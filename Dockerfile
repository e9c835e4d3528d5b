# owaction: one image, four entrypoints (rest, grpc, worker, emulator).
# Build:  docker build -t owaction .
# Run:    docker run --env-file deploy/owaction.env -p 8082:8082 owaction rest

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY requirements.txt pyproject.toml README.md ./
COPY owaction ./owaction
RUN pip install --no-cache-dir --upgrade pip==24.3.1 \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIND_HOST=0.0.0.0 \
    DATA_DIR=/var/lib/owaction \
    LOG_DIR=/var/log/waddlebotlog
RUN groupadd --system --gid 10001 owaction \
 && useradd --system --uid 10001 --gid owaction --home-dir /app --shell /usr/sbin/nologin owaction \
 && mkdir -p /app /var/lib/owaction /var/log/waddlebotlog \
 && chown owaction:owaction /var/lib/owaction /var/log/waddlebotlog
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
 && rm -rf /wheels
WORKDIR /app
COPY --chown=owaction:owaction wsgi.py grpc_server.py gunicorn.conf.py ./
COPY --chown=owaction:owaction deploy/docker-entrypoint.sh /usr/local/bin/owaction-entrypoint
USER 10001:10001
EXPOSE 8082 50062
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('REST_PORT', '8082'), timeout=4).status == 200 else 1)"]
ENTRYPOINT ["owaction-entrypoint"]
CMD ["rest"]
