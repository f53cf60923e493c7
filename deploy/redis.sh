#!/usr/bin/env bash
# Make sure a Redis that the hub's shared delivery memory (and its tests) can use is reachable.
#  - LIAISON_REDIS_URL (or LIAISON_TEST_REDIS_URL) naming a remote Redis: only check it answers.
#  - otherwise a local one on 127.0.0.1:6379: use it if it answers, start the installed
#    redis-server when it is stopped, install it (root on Debian/Ubuntu) when absent, or say
#    exactly what to run.
# A Redis started here is for development and tests; docs/operations.md says how production
# runs it (persistence with appendfsync everysec).
set -euo pipefail

url="${LIAISON_TEST_REDIS_URL:-${LIAISON_REDIS_URL:-redis://127.0.0.1:6379/0}}"
hostport="$(python3 - "$url" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(f"{u.hostname or '127.0.0.1'} {u.port or 6379}")
PY
)"
read -r host port <<<"$hostport"

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
say() { printf 'redis: %s\n' "$*"; }

case "$host" in
  127.*|localhost|::1) local_redis=1 ;;
  *) local_redis=0 ;;
esac

if reachable "$host" "$port"; then
  say "using $host:$port"; exit 0
fi
if [ "$local_redis" = 0 ]; then
  say "cannot reach $host:$port; check LIAISON_REDIS_URL and the network"; exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    say "Redis is not installed. Run: sudo apt-get update && sudo apt-get install -y redis-server"
    say "or point LIAISON_TEST_REDIS_URL at a Redis you already have."
    exit 1
  fi
fi

if ! reachable "$host" "$port"; then
  say "starting redis-server on $host:$port"
  # The package's service may be installed but not running (no init system in a container):
  # start the server directly, in the background, with persistence as production runs it.
  # LIAISON_REDIS_DIR: where it keeps its append-only file (default /var/lib/redis).
  dir="${LIAISON_REDIS_DIR:-/var/lib/redis}"
  mkdir -p "$dir" 2>/dev/null || true
  [ -w "$dir" ] || dir="$(mktemp -d)"
  redis-server --daemonize yes --bind "$host" --port "$port" \
    --appendonly yes --appendfsync everysec --dir "$dir" \
    --pidfile "$dir/redis-$port.pid" --logfile "" >/dev/null
fi

for _ in $(seq 1 30); do
  reachable "$host" "$port" && { say "ready on $host:$port"; exit 0; }
  sleep 0.5
done
say "redis-server did not come up on $host:$port"; exit 1
