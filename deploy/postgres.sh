#!/usr/bin/env bash
# Make sure a PostgreSQL that the ledger can use is reachable (as deploy/broker.sh does for
# RabbitMQ):
#  - LIAISON_DATABASE_URL set: only check that it answers.
#  - otherwise the local cluster: start it when installed but stopped, install `postgresql`
#    with apt-get (root on Debian/Ubuntu) when absent, or say exactly what to run.
set -euo pipefail

say() { printf 'postgres: %s\n' "$*"; }
reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

if [ -n "${LIAISON_DATABASE_URL:-}" ]; then
  hostport="$(python3 - "$LIAISON_DATABASE_URL" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(f"{u.hostname or '127.0.0.1'} {u.port or 5432}")
PY
)"
  read -r host port <<<"$hostport"
  reachable "$host" "$port" && { say "using $host:$port (LIAISON_DATABASE_URL)"; exit 0; }
  say "cannot reach $host:$port from LIAISON_DATABASE_URL; check the URL and the server"; exit 1
fi

host=127.0.0.1 port=5432
if reachable "$host" "$port"; then say "ready on $host:$port"; exit 0; fi

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing postgresql with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    say "PostgreSQL is not installed. Run: sudo apt-get update && sudo apt-get install -y postgresql"
    say "or point LIAISON_DATABASE_URL at a PostgreSQL you already have."
    exit 1
  fi
fi

# The first cluster Debian's tools know (pg_createcluster made one on install).
read -r version cluster _ < <(pg_lsclusters -h | head -n 1) || true
if [ -z "${version:-}" ]; then
  say "postgresql is installed but has no cluster. Run: sudo pg_createcluster --start 15 main"; exit 1
fi
if ! reachable "$host" "$port"; then
  if [ "$(id -u)" = 0 ]; then
    say "starting cluster $version/$cluster"
    pg_ctlcluster "$version" "$cluster" start
  else
    say "cluster $version/$cluster is stopped. Run: sudo pg_ctlcluster $version $cluster start"; exit 1
  fi
fi
for _ in $(seq 1 30); do reachable "$host" "$port" && break; sleep 1; done
reachable "$host" "$port" || { say "PostgreSQL did not come up on $host:$port; see /var/log/postgresql/"; exit 1; }
say "ready on $host:$port"
