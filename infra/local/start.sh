#!/usr/bin/env bash
# Start the cluster topology on this machine without Docker: a Ray head, N Ray worker nodes and the API (uvicorn),
# the same roles as docker-compose.yml (ray-head, ray-worker, api) and infra/kuberay/.
#
#   infra/local/start.sh [--state DIR] [--model PATH | --no-api] [--workers N] [--api-port 8000] ...
#   source runs/local/env.sh          # RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, VIDEOMAE_API_URL
#   ray job submit --working-dir . -- python trainer/pretrain.py --config configs/pretrain/tiny.yaml
#   infra/local/start.sh --api-only --model runs/pretrain-tiny/model   # add the API to the running cluster
#   infra/local/stop.sh [--state DIR]
#
# Why not `ray start` + `ray stop`: `ray stop` kills every Ray process of the machine (it matches process names),
# including other users' clusters and in-process `ray.init()` sessions. Each node here runs as
# `setsid ray start --block`, whose pid is written under $STATE/pids; stop.sh terminates exactly those process trees.
# Every port is explicit (random free ports for the internal ones) so several topologies and test sessions can share
# one host. Token auth is on (RAY_AUTH_MODE=token, as the compose file and KubeRay's authOptions): the token is
# $RAY_AUTH_TOKEN when set, else a fresh one in $STATE/auth_token.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="$ROOT/runs/local"
RAY_PORT=6379
DASHBOARD_PORT=8265
CLIENT_PORT=10001
API_HOST=127.0.0.1
API_PORT=8000
NUM_CPUS=1
WORKERS=1
WORKER_CPUS=1
OBJECT_STORE_MB=256
MODEL="${VIDEOMAE_MODEL:-}"
START_RAY=1
START_API=1
TIMEOUT_S=120
PY="${VIDEOMAE_PYTHON:-$ROOT/.venv/bin/python}"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --state) STATE="$2"; shift 2 ;;
    --ray-port) RAY_PORT="$2"; shift 2 ;;
    --dashboard-port) DASHBOARD_PORT="$2"; shift 2 ;;
    --client-port) CLIENT_PORT="$2"; shift 2 ;;
    --api-host) API_HOST="$2"; shift 2 ;;
    --api-port) API_PORT="$2"; shift 2 ;;
    --num-cpus) NUM_CPUS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --worker-cpus) WORKER_CPUS="$2"; shift 2 ;;
    --object-store-mb) OBJECT_STORE_MB="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --no-api) START_API=0; shift ;;
    --api-only) START_RAY=0; shift ;;
    --timeout) TIMEOUT_S="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "start.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

log() { echo "[local] $*"; }
die() { echo "[local] error: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no python at $PY (run scripts/setup.sh, or set VIDEOMAE_PYTHON)"
# Jobs run `python ...`: the venv must come first on PATH for the nodes and therefore for every job driver.
export PATH="$(dirname "$PY"):$PATH"
RAY="$(dirname "$PY")/ray"
mkdir -p "$STATE/pids" "$STATE/logs"
STATE="$(cd "$STATE" && pwd)"

running() { [ -s "$STATE/pids/$1.pid" ] && kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }

free_ports() {  # free_ports N -> N distinct free TCP ports on 127.0.0.1
  "$PY" - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

wait_http() {  # wait_http URL SECONDS NAME: poll until HTTP 200; fail early when NAME's process exits
  local url="$1" deadline=$((SECONDS + $2)) name="$3"
  until "$PY" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=3).status != 200)" \
      "$url" 2>/dev/null; do
    running "$name" || { tail -n 30 "$STATE/logs/$name.log" >&2; die "$name exited before $url answered"; }
    [ $SECONDS -lt "$deadline" ] || { tail -n 30 "$STATE/logs/$name.log" >&2; die "timed out waiting for $url"; }
    sleep 1
  done
}

launch() {  # launch NAME CMD...: in its own session, from the repository root, pid to $STATE/pids/NAME.pid
  local name="$1"; shift
  # The repository root as working directory keeps `python trainer/...` job entrypoints valid.
  (cd "$ROOT" && exec setsid "$@" >"$STATE/logs/$name.log" 2>&1) &
  echo $! > "$STATE/pids/$name.pid"
  log "$name: pid $! (log $STATE/logs/$name.log)"
}

start_node() {  # start_node NAME ARGS...: `ray start --block` with explicit internal ports
  local name="$1"; shift
  # shellcheck disable=SC2046
  launch "$name" "$RAY" start --block --node-ip-address 127.0.0.1 --disable-usage-stats \
    --object-store-memory $((OBJECT_STORE_MB * 1024 * 1024)) "$@" $(free_ports 6 | awk '{printf \
    "--dashboard-agent-listen-port %s --dashboard-agent-grpc-port %s --metrics-export-port %s \
    --runtime-env-agent-port %s --node-manager-port %s --object-manager-port %s", $1, $2, $3, $4, $5, $6}')
}

start_ray() {
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then die "already running ($f); run infra/local/stop.sh --state $STATE"; fi
    rm -f "$f"
  done
  # Ray puts unix sockets under its temp dir and Linux caps socket paths at 107 bytes: keep it short.
  RAY_TMP="$(mktemp -d /tmp/vmlocal-XXXXXX)"
  echo "$RAY_TMP" > "$STATE/ray_temp_dir"
  if [ -n "${RAY_AUTH_TOKEN:-}" ]; then
    printf '%s' "$RAY_AUTH_TOKEN" > "$STATE/auth_token"
  elif [ ! -s "$STATE/auth_token" ]; then
    "$PY" -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(32))' > "$STATE/auth_token"
  fi
  chmod 600 "$STATE/auth_token"
  log "state $STATE, ray temp $RAY_TMP"

  start_node ray-head --head --port "$RAY_PORT" --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
    --ray-client-server-port "$CLIENT_PORT" --num-cpus "$NUM_CPUS" --num-gpus 0 --temp-dir "$RAY_TMP"
  # /api/gcs_healthz is one of the dashboard paths Ray leaves open under token auth, as in the compose healthcheck.
  wait_http "http://127.0.0.1:$DASHBOARD_PORT/api/gcs_healthz" "$TIMEOUT_S" ray-head
  log "ray-head: up, dashboard and job API at http://127.0.0.1:$DASHBOARD_PORT"

  for i in $(seq 1 "$WORKERS"); do
    start_node "ray-worker-$i" --address "127.0.0.1:$RAY_PORT" --num-cpus "$WORKER_CPUS"
  done
  if [ "$WORKERS" -gt 0 ]; then
    # Joined when the cluster's CPU total counts the workers (`ray status` authenticates with the token file).
    local want=$((NUM_CPUS + WORKERS * WORKER_CPUS)) deadline=$((SECONDS + TIMEOUT_S)) have=""
    until [ "$have" = "$want" ]; do
      [ $SECONDS -lt "$deadline" ] || die "timed out waiting for $WORKERS worker node(s) to join"
      sleep 1
      have="$("$RAY" status --address "127.0.0.1:$RAY_PORT" 2>/dev/null \
        | awk '/[0-9.]+\/[0-9.]+ CPU/ {split($1, a, "/"); print int(a[2]); exit}')"
    done
    log "ray-worker: $WORKERS node(s) joined ($want CPUs in the cluster)"
  fi

  cat > "$STATE/env.sh" <<EOF
# source this file to talk to the local topology started by infra/local/start.sh
export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$STATE/auth_token
export VIDEOMAE_API_URL=http://$API_HOST:$API_PORT
export PATH=$(dirname "$PY"):\$PATH
EOF
}

start_api() {
  [ -n "$MODEL" ] || die "the API needs a model: --model PATH (or VIDEOMAE_MODEL), or --no-api"
  running api && die "the API is already running (pid $(cat "$STATE/pids/api.pid"))"
  # The API reads VIDEOMAE_* settings (api/settings.py) and does not use Ray; `python -m api` is what the compose
  # file and the Kubernetes Deployment run.
  VIDEOMAE_MODEL="$MODEL" VIDEOMAE_HOST="$API_HOST" VIDEOMAE_PORT="$API_PORT" launch api "$PY" -m api
  wait_http "http://$API_HOST:$API_PORT/readyz" "$TIMEOUT_S" api
  log "api: ready at http://$API_HOST:$API_PORT (model $MODEL)"
  if [ -f "$STATE/env.sh" ] && ! grep -q "VIDEOMAE_API_URL=http://$API_HOST:$API_PORT\$" "$STATE/env.sh"; then
    echo "export VIDEOMAE_API_URL=http://$API_HOST:$API_PORT" >> "$STATE/env.sh"
  fi
}

export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$STATE/auth_token"
unset RAY_ADDRESS  # it would turn `ray start --head` into a join
if [ "$START_RAY" = 1 ]; then
  start_ray
  unset RAY_AUTH_TOKEN  # written to the token file; one source of truth for every process below
fi
if [ "$START_API" = 1 ]; then start_api; fi
log "up; source $STATE/env.sh to use it, infra/local/stop.sh --state $STATE to stop it"
