#!/usr/bin/env bash
# The long chaos run: a few hundred jobs of mixed kinds and sizes through several worker
# processes while they are stopped (SIGTERM) and killed (SIGKILL) and restarted, RabbitMQ and
# PostgreSQL are restarted once each, and the emulator injects errors and delays. Prints jobs
# submitted, completed, failed (by reason), lost (must be 0), video jobs with more than one
# asset in VOD (must be 0) and bytes re-sent; exits non-zero when a "must" fails.
#
#   scripts/chaos.sh                                   # 300 jobs, 4 workers, 90 s of chaos
#   CHAOS_JOBS=1000 CHAOS_SECONDS=300 scripts/chaos.sh
#   CHAOS_RESTART_SERVICES=0 scripts/chaos.sh          # leave RabbitMQ and PostgreSQL alone
#
# It restarts the machine's RabbitMQ and PostgreSQL (rabbitmqctl, pg_ctlcluster): do not run it
# where something else uses them. The test suite runs a short, gentle version of the same test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAOS_JOBS="${CHAOS_JOBS:-300}"
export CHAOS_WORKERS="${CHAOS_WORKERS:-4}"
export CHAOS_SECONDS="${CHAOS_SECONDS:-90}"
export CHAOS_SIGKILL="${CHAOS_SIGKILL:-1}"
export CHAOS_RESTART_SERVICES="${CHAOS_RESTART_SERVICES:-1}"
exec cargo test --release --test chaos -- --nocapture --test-threads 1
