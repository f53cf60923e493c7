#!/usr/bin/env bash
# Make sure a RabbitMQ that Liaison can use is reachable.
#  - LIAISON_AMQP_URL set to a remote broker: only check that it answers.
#  - otherwise, a local broker: start it when installed but stopped, install it (root on
#    Debian/Ubuntu) when absent, or say exactly what to run; then enable the plugins Liaison uses.
set -euo pipefail

url="${LIAISON_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="$(python3 - "$url" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(f"{u.hostname or '127.0.0.1'} {u.port or (5671 if u.scheme == 'amqps' else 5672)}")
PY
)"
read -r host port <<<"$hostport"
plugins=(rabbitmq_management rabbitmq_consistent_hash_exchange rabbitmq_shovel rabbitmq_shovel_management rabbitmq_prometheus)

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
say() { printf 'broker: %s\n' "$*"; }

case "$host" in
  127.*|localhost|::1) local_broker=1 ;;
  *) local_broker=0 ;;
esac

if [ "$local_broker" = 0 ]; then
  reachable "$host" "$port" && { say "using $host:$port (LIAISON_AMQP_URL)"; exit 0; }
  say "cannot reach $host:$port from LIAISON_AMQP_URL; check the URL and the network"; exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing rabbitmq-server with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    say "RabbitMQ is not installed. Run: sudo apt-get update && sudo apt-get install -y rabbitmq-server"
    say "or point LIAISON_AMQP_URL at a broker you already have."
    exit 1
  fi
fi

# make-dev-ca.sh (development certificates, and the TLS tests on an extra node) needs openssl.
if ! command -v openssl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing openssl with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  else
    say "openssl is missing (needed by deploy/rabbitmq/make-dev-ca.sh): sudo apt-get install openssl"
  fi
fi

if ! reachable "$host" "$port"; then
  say "starting rabbitmq-server"
  if [ "$(id -u)" = 0 ]; then
    rabbitmq-server -detached >/dev/null 2>&1 || true
  else
    say "RabbitMQ is installed but stopped. Run: sudo rabbitmq-server -detached"; exit 1
  fi
fi

for _ in $(seq 1 60); do
  rabbitmqctl -q await_startup >/dev/null 2>&1 && reachable "$host" "$port" && break
  sleep 1
done
reachable "$host" "$port" || { say "rabbitmq-server did not come up on $host:$port; see /var/log/rabbitmq/"; exit 1; }

enabled="$(rabbitmq-plugins list -e -m 2>/dev/null || true)"
missing=()
for p in "${plugins[@]}"; do grep -qx "$p" <<<"$enabled" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "enabling ${missing[*]}"
  rabbitmq-plugins enable "${missing[@]}" >/dev/null
fi
for _ in $(seq 1 30); do
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/15672" 2>/dev/null && break
  sleep 1
done
say "ready on $host:$port (management API on :15672)"
