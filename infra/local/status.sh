#!/usr/bin/env bash
# What infra/local/start.sh started and whether it still runs:  infra/local/status.sh [--state DIR]
# Exit 0 when every recorded process is alive, 1 when some are gone, 3 when nothing was started.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="$ROOT/runs/local"
[ "${1:-}" = "--state" ] && STATE="$2"

compgen -G "$STATE/pids/*.pid" >/dev/null || { echo "[local] nothing started under $STATE"; exit 3; }
rc=0
for f in "$STATE"/pids/*.pid; do
  name="$(basename "$f" .pid)" pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then echo "[local] $name: running (pid $pid)"; else echo "[local] $name: gone"; rc=1; fi
done
if [ -f "$STATE/env.sh" ]; then
  # shellcheck disable=SC1091
  . "$STATE/env.sh"
  echo "[local] RAY_ADDRESS=$RAY_ADDRESS VIDEOMAE_API_URL=${VIDEOMAE_API_URL:-}"
fi
exit $rc
