#!/usr/bin/env bash
# Start the cluster topology on this machine without Docker: a Ray head, N Ray worker nodes and the API (uvicorn),
# the same roles as docker-compose.yml (ray-head, ray-worker, api) and infra/kuberay/.
#
#   infra/local/start.sh [--state DIR] [--model PATH] [--workers N] [--api-port 8000] ...
#   source runs/local/env.sh          # RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, VIDEOMAE_API_URL
#   ray job submit --working-dir . -- python trainer/pretrain.py --config configs/pretrain/tiny.yaml
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
START_API=1
TIMEOUT_S=120
PY="${VIDEOMAE_PYTHON:-$ROOT/.venv/bin/python}"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

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
if compgen -G "$STATE/pids/*.pid" >/dev/null; then
  for f in "$STATE"/pids/*.pid; do
    if kill -0 "$(cat "$f")" 2>/dev/null; then die "already running ($f); run infra/local/stop.sh --state $STATE"; fi
  done
  rm -f "$STATE"/pids/*.pid
fi

# Ray puts unix sockets under its temp dir and Linux caps socket paths at 107 bytes: keep it short, outside $STATE.
RAY_TMP="$(mktemp -d /tmp/vmlocal-XXXXXX)"
echo "$RAY_TMP" > "$STATE/ray_temp_dir"

if [ -n "${RAY_AUTH_TOKEN:-}" ]; then
  printf '%s' "$RAY_AUTH_TOKEN" > "$STATE/auth_token"
elif [ ! -s "$STATE/auth_token" ]; then
  "$PY" -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(32))' > "$STATE/auth_token"
fi
chmod 600 "$STATE/auth_token"
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$STATE/auth_token"
unset RAY_AUTH_TOKEN RAY_ADDRESS  # the token file is the one source; RAY_ADDRESS would redirect `ray start --head`

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

wait_http() {  # wait_http URL SECONDS PID LOG: poll until HTTP 200, fail early when PID exits
  local url="$1" deadline=$((SECONDS + $2)) pid="$3" logf="$4"
  until "$PY" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=3).status != 200)" \
      "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$logf" >&2; die "process $pid exited before $url answered"; }
    [ $SECONDS -lt "$deadline" ] || { tail -n 30 "$logf" >&2; die "timed out waiting for $url"; }
    sleep 1
  done
}

start_node() {  # start_node NAME ARGS...: `ray start --block` in its own session, pid to $STATE/pids/NAME.pid
  local name="$1"; shift
  # shellcheck disable=SC2046
  set -- "$@" $(free_ports 6 | awk '{printf "--dashboard-agent-listen-port %s --dashboard-agent-grpc-port %s \
    --metrics-export-port %s --runtime-env-agent-port %s --node-manager-port %s --object-manager-port %s", \
    $1, $2, $3, $4, $5, $6}')
  # Jobs inherit the node's working directory; the repository root keeps `python trainer/...` paths valid.
  (cd "$ROOT" && exec setsid "$RAY" start --block --node-ip-address 127.0.0.1 --disable-usage-stats \
    --object-store-memory $((OBJECT_STORE_MB * 1024 * 1024)) "$@" >"$STATE/logs/$name.log" 2>&1) &
  echo $! > "$STATE/pids/$name.pid"
  log "$name: pid $! (log $STATE/logs/$name.log)"
}

log "state $STATE, ray temp $RAY_TMP"
start_node ray-head --head --port "$RAY_PORT" --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
  --ray-client-server-port "$CLIENT_PORT" --num-cpus "$NUM_CPUS" --num-gpus 0 --temp-dir "$RAY_TMP"
# /api/gcs_healthz is one of the dashboard paths Ray leaves open under token auth, like the compose healthcheck.
wait_http "http://127.0.0.1:$DASHBOARD_PORT/api/gcs_healthz" "$TIMEOUT_S" \
  "$(cat "$STATE/pids/ray-head.pid")" "$STATE/logs/ray-head.log"
log "ray-head: up, dashboard http://127.0.0.1:$DASHBOARD_PORT"

for i in $(seq 1 "$WORKERS"); do
  start_node "ray-worker-$i" --address "127.0.0.1:$RAY_PORT" --num-cpus "$WORKER_CPUS"
done
if [ "$WORKERS" -gt 0 ]; then
  # A worker has joined when the cluster's CPU total includes it; `ray status` is authenticated by the token file.
  want=$((NUM_CPUS + WORKERS * WORKER_CPUS)) deadline=$((SECONDS + TIMEOUT_S))
  until [ "$("$RAY" status --address "127.0.0.1:$RAY_PORT" 2>/dev/null | awk '/[0-9.]+\/[0-9.]+ CPU/ {split($1, a, "/"); print int(a[2]); exit}')" = "$want" ]; do
    [ $SECONDS -lt "$deadline" ] || die "timed out waiting for $WORKERS worker node(s) to join"
    sleep 1
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

if [ "$START_API" = 1 ]; then
  [ -n "$MODEL" ] || die "the API needs a model: --model PATH (or VIDEOMAE_MODEL), or --no-api"
  # The API reads VIDEOMAE_* settings (api/settings.py); it does not use Ray.
  (cd "$ROOT" && VIDEOMAE_MODEL="$MODEL" exec setsid "$PY" -m uvicorn api.main:app --host "$API_HOST" \
    --port "$API_PORT" >"$STATE/logs/api.log" 2>&1) &
  echo $! > "$STATE/pids/api.pid"
  log "api: pid $! (log $STATE/logs/api.log)"
  wait_http "http://$API_HOST:$API_PORT/readyz" "$TIMEOUT_S" "$(cat "$STATE/pids/api.pid")" "$STATE/logs/api.log"
  log "api: ready at http://$API_HOST:$API_PORT"
fi
log "up; source $STATE/env.sh to use it, infra/local/stop.sh --state $STATE to stop it"
