#!/usr/bin/env bash
# Stop what infra/local/start.sh started, and nothing else:  infra/local/stop.sh [--state DIR] [--grace S]
#
# For each pid under $STATE/pids (a `ray start --block` per node, uvicorn for the API) the whole process tree is
# collected first (Ray workers and job drivers are children of the raylet but run in their own sessions, so a
# process-group kill would miss them), every process of it gets SIGTERM, and whatever is still alive after the grace
# period gets SIGKILL. Never `ray stop`: it would kill every
# Ray process on the machine, other clusters and in-process `ray.init()` sessions included.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="$ROOT/runs/local"
GRACE_S=20

while [ $# -gt 0 ]; do
  case "$1" in
    --state) STATE="$2"; shift 2 ;;
    --grace) GRACE_S="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stop.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { echo "[local] $*"; }

[ -d "$STATE/pids" ] || { log "nothing to stop (no $STATE/pids)"; exit 0; }

roots=""
for f in "$STATE"/pids/*.pid; do
  [ -e "$f" ] || continue
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then roots="$roots $pid"; fi
done

descendants() {  # descendants PID...: the PIDs and all their living descendants (by parent pid)
  ps -eo pid=,ppid= | awk -v roots="$*" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END {
      grew = 1
      while (grew) { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } }
      for (p in keep) if (p in parent) print p
    }'
}

alive() {  # alive PID...: those still running (zombies are dead; only their parent can reap them)
  for p in "$@"; do
    st="$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)"
    if [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; then echo "$p"; fi
  done
}

if [ -n "$roots" ]; then
  # shellcheck disable=SC2086
  tree="$(descendants $roots | tr '\n' ' ')"
  log "stopping $(echo "$tree" | wc -w) process(es) under pids:$roots"
  # SIGTERM to every process of the trees at once, as `ray stop` does to the processes it finds by name: each Ray
  # process treats SIGTERM as a graceful exit, and a node's `ray start --block` parent exits with its children.
  # shellcheck disable=SC2086
  kill -TERM $tree 2>/dev/null || true
  deadline=$((SECONDS + GRACE_S))
  # shellcheck disable=SC2086
  while [ -n "$(alive $tree)" ] && [ $SECONDS -lt "$deadline" ]; do sleep 0.5; done
  # shellcheck disable=SC2086
  left="$(alive $tree | tr '\n' ' ')"
  if [ -n "$left" ]; then
    log "SIGKILL to $(echo "$left" | wc -w) process(es) left after ${GRACE_S}s: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 1
  fi
fi

rm -f "$STATE"/pids/*.pid
if [ -s "$STATE/ray_temp_dir" ]; then
  tmp="$(cat "$STATE/ray_temp_dir")"
  case "$tmp" in /tmp/vmlocal-*) rm -rf "$tmp" ;; esac  # only the directory start.sh made
  rm -f "$STATE/ray_temp_dir"
fi
log "stopped"
