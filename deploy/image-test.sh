#!/usr/bin/env bash
# Build the image with podman and run it the way the seed documents (`docker run -d -p 8082:8082
# -p 50062:50062 -e ... image`): REST /health and gRPC health must answer from that one container,
# then each role's own health check must pass, read-only and with the stop timeout.
#
# Needs root (podman's networking, apt-get). Without a registry, the base image is a stand-in:
# a debootstrapped Debian bookworm with Debian's python3 as a venv in /usr/local, tagged with the
# Dockerfile's FROM name, built once and reused. Nothing is written into the repository: work
# files go to $OWACTION_IMAGE_WORK. Exit 0 passed, 1 failed, 77 cannot run here.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${OWACTION_IMAGE_WORK:-/var/tmp/owaction-image-test}
IMAGE=localhost/owaction:image-test
EMULATOR_IMAGE=localhost/owaction-emulator:image-test
BASE=$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' "$ROOT/Dockerfile")
BASE=docker.io/library/${BASE#docker.io/library/}
PY=${OWACTION_IMAGE_TEST_PYTHON:-$ROOT/.venv/bin/python}
SECRET=image-test-$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
PREFIX=owaction-image-test-$$
CONTAINERS=()
PODS=()

say() { printf 'image-test: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }
# Without systemd, podman says on every run that it cannot schedule health checks; they are run
# here with `podman healthcheck run`, so that line is noise.
pm() { podman "$@" 2> >(grep -v 'systemd connection' >&2); }

cleanup() {
  for c in "${CONTAINERS[@]}"; do pm rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  for p in "${PODS[@]}"; do podman pod rm -f "$p" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# --- tools -----------------------------------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
   || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "SKIPPED: podman, runc and debootstrap are missing and cannot be installed here"; exit 77
  fi
  say "installing podman, runc and debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc \
    debootstrap >/dev/null
fi
if [ "$(id -u)" != 0 ]; then say "SKIPPED: needs root for podman's networking"; exit 77; fi
mkdir -p "$WORK"
# crun refuses this host's cgroup layout (runc works); the hard open-files limit is below
# podman's default ulimit.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

# --- the stand-in base image -----------------------------------------------------------------
if ! podman image exists "$BASE"; then
  say "building a stand-in for $BASE (debootstrap bookworm, Debian's python3)"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
    "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || fail "debootstrap (see $WORK/debootstrap.log)"
  tar -C "$WORK/rootfs" -c . | podman import --quiet - localhost/owaction-bookworm-rootfs \
    >/dev/null
  rm -rf "$WORK/rootfs"
  mkdir -p "$WORK/base"
  # The host's CA bundle: HTTPS here may be re-signed by a CA only the host trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/base/ca-certificates.crt"
  cat >"$WORK/base/Containerfile" <<'EOF'
FROM localhost/owaction-bookworm-rootfs
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
EOF
  podman build --quiet --format docker -t "$BASE" "$WORK/base" >/dev/null \
    || fail "building the stand-in base"
fi

# --- build -----------------------------------------------------------------------------------
started=$(date +%s)
say "building $IMAGE and $EMULATOR_IMAGE"
podman build --quiet --format docker --pull=never --network host -t "$IMAGE" "$ROOT" \
  >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "podman build"; }
podman build --quiet --format docker --pull=never --network host --target emulator \
  -t "$EMULATOR_IMAGE" "$ROOT" >>"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; fail "podman build --target emulator"; }
say "built in $(( $(date +%s) - started )) s; image $(podman image inspect --format '{{.Size}}' \
  "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

# The production image: no emulator, no wheel files, a non-root user, the documented volumes.
pm run --rm --entrypoint python "$IMAGE" -c 'import openwhisk_emulator' 2>/dev/null \
  && fail "the emulator is in the production image"
pm run --rm --entrypoint sh "$IMAGE" -c 'test ! -e /wheels && test ! -e /install' \
  || fail "build files left in the production image"
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = "10001:10001" ] \
  || fail "the image does not run as uid 10001"
podman image inspect --format '{{json .Config.Volumes}}' "$IMAGE" | grep -q /var/lib/owaction \
  || fail "no VOLUME for the data directory"
set +e
podman run --rm "$IMAGE" emulator >/dev/null 2>"$WORK/emulator-command.err"; code=$?
set -e
[ "$code" = 2 ] && grep -q -- "--target emulator" "$WORK/emulator-command.err" \
  || fail "\`image emulator\` should exit 2 naming the emulator target (got $code)"

free_port() { PYTHONDONTWRITEBYTECODE=1 "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_healthy() {  # container, seconds
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if podman healthcheck run "$1" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  podman logs "$1" 2>&1 | tail -30
  return 1
}

ENV_ARGS=(-e "MODULE_SECRET_KEY=$SECRET" -e "OPENWHISK_API_HOST=http://127.0.0.1:3233"
          -e "WORKER_METRICS_PORT=0" -e "GRPC_METRICS_PORT=0")

# --- the seed's command: one container, both servers -----------------------------------------
rest_port=$(free_port); grpc_port=$(free_port)
name=$PREFIX-serve; CONTAINERS+=("$name")
pm run -d --name "$name" -p "127.0.0.1:$rest_port:8082" -p "127.0.0.1:$grpc_port:50062" \
  --read-only --stop-timeout 90 "${ENV_ARGS[@]}" "$IMAGE" >/dev/null
wait_healthy "$name" 60 || fail "the one-container health check (serve) never passed"
# The host-side checks run from the checkout: no bytecode may be written into it.
check_env=(env -i "PATH=$PATH" PYTHONDONTWRITEBYTECODE=1 "MODULE_SECRET_KEY=$SECRET"
           "BIND_HOST=127.0.0.1" "REST_PORT=$rest_port" "GRPC_PORT=$grpc_port"
           "DATA_DIR=$WORK/data")
(cd "$WORK" && "${check_env[@]}" "$PY" -m owaction healthcheck rest) \
  || fail "REST /health did not answer on the published port"
(cd "$WORK" && "${check_env[@]}" "$PY" -m owaction healthcheck grpc) \
  || fail "gRPC health did not answer on the published port"
say "one container (read-only root): REST /health and gRPC health answer on $rest_port and $grpc_port"
stop_started=$(date +%s)
pm stop -t 90 "$name" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { podman logs "$name" 2>&1 | tail -20; fail "serve exited $code on SIGTERM"; }
say "podman stop: exit 0 after $(( $(date +%s) - stop_started )) s"

# --- one role per container, each passing its own check --------------------------------------
for role in rest grpc worker; do
  name=$PREFIX-$role; CONTAINERS+=("$name")
  pm run -d --name "$name" --read-only --stop-timeout 90 "${ENV_ARGS[@]}" "$IMAGE" "$role" \
    >/dev/null
  wait_healthy "$name" 60 || fail "the $role container's health check never passed"
  say "$role: health check passes"
done
# A role's check fails when that role is not what runs: the grpc container has no REST.
podman exec "$PREFIX-grpc" python -m owaction healthcheck rest >/dev/null 2>&1 \
  && fail "the REST check passed in the gRPC container"

name=$PREFIX-migrate; CONTAINERS+=("$name")
pm run --name "$name" --read-only "${ENV_ARGS[@]}" "$IMAGE" migrate >/dev/null \
  || fail "migrate"
say "migrate: exit 0"

# --- the emulator target ---------------------------------------------------------------------
name=$PREFIX-emulator; CONTAINERS+=("$name")
pm run -d --name "$name" "$EMULATOR_IMAGE" >/dev/null
wait_healthy "$name" 60 || fail "the emulator's health check never passed"
say "emulator: health check passes"

# --- stopping drains an in-flight call ------------------------------------------------------
# The emulator and the module share a pod's network, as a sidecar would: a 12 s action is
# running when `podman stop -t 90` arrives, and must still answer.
rest_port=$(free_port); pod=$PREFIX-pod; PODS+=("$pod")
podman pod create --name "$pod" -p "127.0.0.1:$rest_port:8082" >/dev/null
name=$PREFIX-pod-emulator; CONTAINERS+=("$name")
pm run -d --pod "$pod" --name "$name" "$EMULATOR_IMAGE" >/dev/null
name=$PREFIX-drain; CONTAINERS+=("$name")
pm run -d --pod "$pod" --name "$name" --read-only --stop-timeout 90 "${ENV_ARGS[@]}" \
  -e API_KEYS=image-test=image-test-key-0123456789 "$IMAGE" >/dev/null
wait_healthy "$name" 60 || fail "the module beside the emulator never became healthy"
token=$(cd "$WORK" && "${check_env[@]}" API_KEYS=image-test=image-test-key-0123456789 \
        "$PY" -m owaction token --service image-test)
(cd "$WORK" && "${check_env[@]}" "$PY" -m owaction invoke sleep -p ms=12000 --token "$token" \
   --url "http://127.0.0.1:$rest_port" >"$WORK/drain.json") &
invoke=$!
sleep 4
stop_started=$(date +%s)
pm stop -t 90 "$name" >/dev/null
stopped=$(( $(date +%s) - stop_started ))
wait "$invoke" || { cat "$WORK/drain.json"; fail "the call in flight during the stop failed"; }
grep -q '"slept_ms": 12000' "$WORK/drain.json" || fail "the drained call has no result"
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "serve exited $code after draining"
say "podman stop -t 90 during a 12 s call: the call answered, exit 0 after $stopped s"

say "PASSED"
