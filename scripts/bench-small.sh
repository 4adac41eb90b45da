#!/usr/bin/env bash
# Small-jobs benchmark: N small jobs (videos of 50 KB, images of 20 KB, subtitles of 2 KB, an
# even mix) pre-loaded on the jobs queue, then
#   1. `vod-ingest run` takes them to `completed` (through the emulator's callbacks), then gets
#      BENCH_OFFERED_RATE jobs/s for BENCH_LATENCY_SECS for the enqueue-to-`uploaded` latency;
#   2. the same for a reference worker written with the official Python SDKs (threads, pika,
#      aliyun-python-sdk-vod, oss2, psycopg; to `uploaded`): scripts/bench_small_reference.py;
#   3. BENCH_FLEET_PROCESSES `vod-ingest run` processes against an emulator limit of
#      BENCH_FLEET_LIMIT calls/s per action: calls per second per action, throttling answers.
# Worker CPU per job is user + system time of the worker process (/proc/<pid>/stat) over the
# run divided by N, which other programs on the machine affect much less than jobs/s.
#
# Usage: scripts/bench-small.sh
# Environment (defaults in brackets):
#   BENCH_JOBS [3000]  BENCH_CONCURRENCY [32]  BENCH_REF_THREADS [32]
#   BENCH_OFFERED_RATE [300]  BENCH_LATENCY_SECS [10]
#   BENCH_WORKER_RATE_LIMITS  VOD_INGEST_VOD_RATE_LIMITS for parts 1 [1000 per action: the
#                     documented 120 per action would cap an even mix at 360 jobs/s by itself]
#   BENCH_FLEET_LIMIT [50]  BENCH_FLEET_PROCESSES [3]  BENCH_FLEET_JOBS [1200]
#   BENCH_FLEET_CONCURRENCY [8]  VOD_INGEST_CONCURRENCY of each fleet process
#   BENCH_SKIP_VOD_INGEST=1, BENCH_SKIP_REFERENCE=1, BENCH_SKIP_FLEET=1  leave a part out
#   BENCH_PG_ADMIN    a PostgreSQL URL to create the bench databases from
#                     [postgres://postgres@127.0.0.1:5432/postgres]
#   AMQP_URL [amqp://guest:guest@127.0.0.1:5672/%2f]
#   BENCH_VENV        virtualenv for the SDKs [target/sdk-venv]
#   BENCH_BIN         a vod-ingest binary to measure instead of building one
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
venv="${BENCH_VENV:-$target_dir/sdk-venv}"
bin="${BENCH_BIN:-$target_dir/release/vod-ingest}"
if [[ -z "${BENCH_BIN:-}" ]]; then
    echo "building vod-ingest (release)..." >&2
    cargo build --quiet --release --bin vod-ingest
fi
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import aliyunsdkcore, aliyunsdkvod, oss2, pika, psycopg' 2>/dev/null; then
    echo "installing oss2, aliyun-python-sdk-core, aliyun-python-sdk-vod, pika, psycopg into $venv..." >&2
    "$venv/bin/pip" install --quiet oss2 aliyun-python-sdk-core aliyun-python-sdk-vod pika 'psycopg[binary]'
fi
py="$venv/bin/python"

work="$(mktemp -d "${TMPDIR:-/tmp}/vod-ingest-bench-small.XXXXXX")"
emulator_pid=""
cleanup() {
    if [[ -n "$emulator_pid" ]]; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
    fi
    if [[ -z "${BENCH_KEEP:-}" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
callback_port="$(free_port)"
"$bin" emulator --listen "127.0.0.1:$port" --data-dir "$work/emulator" \
    --callback-url "http://127.0.0.1:$callback_port/callbacks/vod" --callback-key bench-callback-key \
    >"$work/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 1 100); do
    if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_emulator/stats', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

export ALIBABA_CLOUD_ACCESS_KEY_ID=emulator-access-key-id
export ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-access-key-secret
export BENCH_CALLBACK_PORT="$callback_port"
"$py" "$root/scripts/bench_small.py" "$bin" "http://127.0.0.1:$port" "$work"
