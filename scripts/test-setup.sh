#!/usr/bin/env bash
# What the test suite needs, made ready when it is missing: PostgreSQL and RabbitMQ running
# (started when they are installed here but down), Node.js and Debian's Chromium (for the
# browser and official-SDK client tests), and the web packages exactly as web/package-lock.json
# pins them. Idempotent, and a few checks only when all is there. `scripts/test` and `.ci/run`
# both call it. (Clearing test queues left by an interrupted run is .ci/run's alone: on a
# developer's broker another test run may be using them.)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test-setup: $*" >&2; }

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  say "$what did not become ready in ${secs}s"
  return 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { as_root apt-get update -qq >/dev/null 2>&1 \
         && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# --- PostgreSQL and RabbitMQ (the tests use the real ones: DATABASE_URL, AMQP_URL) ---------
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
      say "starting PostgreSQL"
      as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    fi
    wait_for PostgreSQL 60 pg_isready -h 127.0.0.1 -p 5432 -q
  fi
else
  say "pg_isready not found: make sure PostgreSQL answers at DATABASE_URL"
fi

if command -v rabbitmq-diagnostics >/dev/null 2>&1; then
  if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached
    wait_for RabbitMQ 120 rabbitmq-diagnostics -q check_port_connectivity
  fi
else
  say "rabbitmq-diagnostics not found: make sure RabbitMQ answers at AMQP_URL"
fi

# --- Node.js, Chromium and the web packages (tests/clients.rs, tests/console.rs) ------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js"
  apt_install nodejs npm || { say "could not install Node.js: install Node.js 18+ and npm"; exit 1; }
fi
if ! command -v chromium >/dev/null 2>&1; then
  say "installing Chromium"
  apt_install chromium || { say "could not install Chromium: install Debian's chromium package (or put a chromium on PATH)"; exit 1; }
fi
# `npm ci` takes exactly what the lock file pins; skipped when the install is newer than it.
stamp=web/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ web/package-lock.json -nt "$stamp" ]; then
  say "installing the web packages (npm ci --prefix web)"
  npm ci --prefix web --no-audit --no-fund --loglevel=error
fi
