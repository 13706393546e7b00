#!/usr/bin/env bash
# Load run (not a CI test; see README.md beside this file): CONNECTIONS wrk connections for
# DURATION seconds on the guarded query `{ me { id roles } }`, plus LOGIN_RATE logins per
# second, against `python -m api serve` in production settings on PostgreSQL and Redis.
# Reports error counts, p99 latencies, and the workers' resident memory at start and end.
# Loopback only; every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test_rel}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/9}"
WORKERS="${WORKERS:-1}"
CONNECTIONS="${CONNECTIONS:-500}"
DURATION="${DURATION:-60}"
LOGIN_RATE="${LOGIN_RATE:-20}"
WRK_THREADS="${WRK_THREADS:-1}"
PYTHON="${PYTHON:-python}"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
ulimit -n 8192 2>/dev/null || true

work="$(mktemp -d /tmp/graphgate-bench.XXXXXX)"
port="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:${port}"
secret() { "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(48))'; }

export APP_ENV=production DATABASE_URL REDIS_URL DATA_DIR="$work/data"
export JWT_SECRET="$(secret)" JWT_REFRESH_SECRET="$(secret)"
export PUBLIC_URL="$url" METRICS_TOKEN="$(secret)"
# Every request comes from 127.0.0.1 here: a per-IP limit would measure itself, not the service.
export RATE_LIMIT_PER_IP="1000000 per minute"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

email="bench-$(date +%s)-$$@example.com"
password="bench password $$"
echo "$password" | "$PYTHON" -m api create-user "$email" --password-stdin >/dev/null

"$PYTHON" -m api serve --port "$port" --workers "$WORKERS" >"$work/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fs "$url/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "$url/readyz" >/dev/null
until [ "$(grep -c 'worker [0-9]* started' "$work/server.log")" -ge "$WORKERS" ]; do sleep 0.2; done
pids="$(grep -o 'worker [0-9]* started' "$work/server.log" | awk '{print $2}')"

rss_kib() {  # summed VmRSS of the workers, KiB
  local total=0 pid
  for pid in $pids; do
    total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
  done
  echo "$total"
}

export TOKEN
TOKEN="$(curl -fs "$url/graphql" -H 'Content-Type: application/json' \
  -d "$(jq -nc --arg e "$email" --arg p "$password" \
    '{query: "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }", variables: {e: $e, p: $p}}')" \
  | jq -r .data.login.accessToken)"

rss_idle="$(rss_kib)"
echo "== warm-up: 5 s of the same load, not counted (argon2's 19 MiB per hashing thread and"
echo "   the buffers of $CONNECTIONS connections are allocated once; growth is measured after)"
"$PYTHON" bench/reliability/logins.py "$url" "$email" "$password" \
  --rate "$LOGIN_RATE" --duration 5 >/dev/null &
warm=$!
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d5s -s bench/reliability/me.lua "$url/graphql" >/dev/null
wait "$warm"
rss_start="$(rss_kib)"

echo "== load: ${CONNECTIONS} connections x ${DURATION} s on { me { id roles } } + ${LOGIN_RATE} logins/s, ${WORKERS} worker(s)"
"$PYTHON" bench/reliability/logins.py "$url" "$email" "$password" \
  --rate "$LOGIN_RATE" --duration "$DURATION" >"$work/logins.txt" &
logins=$!
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency \
  -s bench/reliability/me.lua "$url/graphql" >"$work/wrk.txt"
wait "$logins"
rss_end="$(rss_kib)"

kill -TERM "$server"
set +e
wait "$server"
status=$?
set -e
trap - EXIT

echo "== wrk (guarded query)"
grep -E 'Requests/sec|Non-2xx|Socket errors' "$work/wrk.txt" || true
grep '^RESULT' "$work/wrk.txt"
echo "== logins"
cat "$work/logins.txt"
echo "== memory (VmRSS of the worker(s), KiB)"
echo "idle=${rss_idle} start=${rss_start} end=${rss_end} growth=$(
  awk -v a="$rss_start" -v b="$rss_end" 'BEGIN {printf "%.1f%%", (b - a) * 100 / a}')"
echo "== server"
echo "exit status after SIGTERM: ${status}"
echo "log lines at ERROR: $(grep -c ' ERROR ' "$work/server.log" || true), tracebacks: $(grep -c Traceback "$work/server.log" || true)"
echo "(logs and raw output in $work)"
