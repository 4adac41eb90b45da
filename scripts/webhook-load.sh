#!/usr/bin/env bash
# Load test of the webhook (POST /callbacks/vod) with wrk against a running instance: valid,
# signed, distinct callbacks (no two bodies alike, so none is a duplicate), then prints requests
# per second, p99 latency and how many events PostgreSQL holds, and fails when any is lost.
#
# Usage: scripts/webhook-load.sh [DURATION] [CONNECTIONS] [THREADS]   e.g. scripts/webhook-load.sh 30s 16 2
#   defaults: 30s, 32 connections, 2 wrk threads.
# Environment:
#   LOAD_DATABASE_URL  a database of the run's own, dropped afterwards
#                      (default postgres://postgres@127.0.0.1:5432/vod_ingest_load_<pid>)
#   AMQP_URL           RabbitMQ (default amqp://guest:guest@127.0.0.1:5672/%2f); the instance
#                      declares its topology under the prefix vod.ingest.loadtest (reused by reruns)
#   LOAD_EVENT         event type sent (default StreamTranscodeComplete, for media no job knows:
#                      stored, applied to nothing)
#   LOAD_KNOWN_JOBS    when set to N > 0, N completed video jobs are created first and every
#                      event is a StreamTranscodeComplete (a new definition each time) for one of
#                      their media (job row locked, detail merged, a media.stream_ready
#                      milestone recorded and published)
#
# It builds the release binary, starts the emulator (VOD endpoints for `run`) and
# `vod-ingest run --no-worker --no-reconciler` on loopback ports, and stops both at the end.
# VOD signs only `url|timestamp|key` (src/webhook/verify.rs): the signatures for every second
# of the run are computed up front with md5sum and handed to the Lua script, which puts a
# unique VideoId in each body. wrk, PostgreSQL and the service share the machine: the figures
# are for all of them on it.
set -euo pipefail

duration="${1:-30s}"
connections="${2:-32}"
threads="${3:-2}"
event_type="${LOAD_EVENT:-StreamTranscodeComplete}"
known_jobs="${LOAD_KNOWN_JOBS:-0}"
amqp_url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
db_url="${LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/vod_ingest_load_$$}"

if ! command -v wrk > /dev/null; then
    if [[ $(id -u) == 0 ]]; then
        apt-get install -y -q wrk > /dev/null
    else
        echo "webhook-load.sh: wrk is missing: apt-get install wrk" >&2
        exit 2
    fi
fi
for tool in psql curl md5sum; do
    command -v "$tool" > /dev/null || { echo "webhook-load.sh: $tool is missing" >&2; exit 2; }
done
if ! [[ "$duration" =~ ^([0-9]+)s?$ ]]; then
    echo "webhook-load.sh: DURATION is seconds, e.g. 30s, not $duration" >&2
    exit 2
fi
seconds="${BASH_REMATCH[1]}"

root="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/release/vod-ingest"
echo "building vod-ingest (release)..." >&2
(cd "$root" && cargo build --quiet --release --bin vod-ingest)

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    wait 2> /dev/null || true
    psql -q "${db_url%/*}/postgres" -c "DROP DATABASE IF EXISTS \"${db_url##*/}\" WITH (FORCE)" > /dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emu_port="$(free_port)"
http_port="$(free_port)"
admin_port="$(free_port)"
key="loadtest-callback-key"
callback_url="http://127.0.0.1:$http_port/callbacks/vod"

"$bin" emulator --listen "127.0.0.1:$emu_port" --data-dir "$work/emu" \
    --access-key-id load-ak --access-key-secret load-secret > "$work/emulator.log" 2>&1 &
pids+=($!)

export DATABASE_URL="$db_url" AMQP_URL="$amqp_url"
"$bin" migrate > "$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }

ALIBABA_CLOUD_ACCESS_KEY_ID=load-ak ALIBABA_CLOUD_ACCESS_KEY_SECRET=load-secret \
VOD_ENDPOINT="http://127.0.0.1:$emu_port" STS_ENDPOINT="http://127.0.0.1:$emu_port" \
VOD_CALLBACK_URL="$callback_url" VOD_CALLBACK_AUTH_KEYS="$key" \
VOD_INGEST_HTTP_ADDR="127.0.0.1:$http_port" VOD_INGEST_ADMIN_ADDR="127.0.0.1:$admin_port" \
VOD_INGEST_AMQP_PREFIX=vod.ingest.loadtest RUST_LOG=warn \
    "$bin" run --no-worker --no-reconciler > "$work/run.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$http_port/healthz" > /dev/null && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$http_port/healthz" > /dev/null || { cat "$work/run.log" >&2; exit 1; }

if (( known_jobs > 0 )); then
    psql -q "$db_url" -c "INSERT INTO ingest_jobs (job_id, kind, state, source, request, media_id, media_status, uploaded_at, completed_at)
        SELECT 'load-' || i, 'video', 'completed', 'load', '{}', lpad(to_hex(i), 32, '0'), 'Transcoding', now(), now()
        FROM generate_series(0, $((known_jobs - 1))) i" > /dev/null
fi

# Signatures for every second of the run (and a margin), as a Lua table.
now="$(date +%s)"
{
    echo "return {"
    for ts in $(seq $((now - 5)) $((now + seconds + 60))); do
        sig="$(printf '%s|%s|%s' "$callback_url" "$ts" "$key" | md5sum | cut -d' ' -f1)"
        echo "[$ts]=\"$sig\","
    done
    echo "}"
} > "$work/sigs.lua"

cat > "$work/load.lua" << EOF
local sigs = dofile("$work/sigs.lua")
local event_type = "$event_type"
local threads = {}
local next_id = 0

function setup(thread)
    thread:set("tid", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

local counter = 0
local known = $known_jobs
function request()
    counter = counter + 1
    local ts = os.time()
    local video_id = string.format("%08x%08x%016x", $$, tid, counter)
    local definition = "LD"
    if known > 0 then
        video_id = string.format("%032x", math.random(0, known - 1))
        definition = string.format("D%d-%d", tid, counter)
    end
    local body = '{"Status":"success","VideoId":"' .. video_id .. '","EventType":"' .. event_type ..
        '","EventTime":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ", ts) ..
        '","Bitrate":"925","Definition":"' .. definition .. '","Duration":15.0,"Encrypt":false,' ..
        '"FileUrl":"http://vod.example/' .. video_id .. '/ld.mp4","Format":"mp4","Fps":"30",' ..
        '"Height":960,"Size":1815321,"Width":540,"JobId":"' .. video_id .. '"}'
    return wrk.format("POST", "/callbacks/vod", {
        ["Content-Type"] = "application/json",
        ["X-VOD-TIMESTAMP"] = tostring(ts),
        ["X-VOD-SIGNATURE"] = sigs[ts],
    }, body)
end

function done(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format("LOAD requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        latency.max, errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
EOF

echo "wrk: $threads threads, $connections connections, $duration against $callback_url" >&2
wrk -t "$threads" -c "$connections" -d "${seconds}s" --latency -s "$work/load.lua" \
    "http://127.0.0.1:$http_port/callbacks/vod" | tee "$work/wrk.out" >&2

line="$(grep '^LOAD ' "$work/wrk.out")"
get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<< " ${line#LOAD }"; }
requests="$(get requests)"
duration_us="$(get duration_us)"
p99_us="$(get p99_us)"
p50_us="$(get p50_us)"
non2xx="$(get non2xx)"
socket_errors="$(get socket_errors)"
stored="$(psql -tA "$db_url" -c "SELECT count(*) FROM vod_events WHERE verification = 'verified'")"
answered=$((requests - non2xx))
rps="$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
p99_ms="$(awk -v p="$p99_us" 'BEGIN { printf "%.2f", p / 1000 }')"
p50_ms="$(awk -v p="$p50_us" 'BEGIN { printf "%.2f", p / 1000 }')"

echo
echo "requests/s:      $rps"
echo "latency p50:     ${p50_ms} ms"
echo "latency p99:     ${p99_ms} ms"
echo "requests:        $requests (non-2xx: $non2xx, socket errors: $socket_errors)"
echo "events stored:   $stored"
# Every request answered 200 must be stored; wrk may cut the last in-flight ones at the end,
# which the service may still store, so stored may exceed the answered count, never fall short.
if (( stored < answered )); then
    echo "LOST: $((answered - stored)) callbacks were answered 200 but are not stored" >&2
    exit 1
fi
echo "nothing lost:    every callback answered 200 is stored"
