#!/usr/bin/env bash
# Checks the HTTP API against its OpenAPI document (src/api/openapi.json) with schemathesis:
# generated requests, valid and invalid, for every documented operation, and the answers held to
# the document (no 5xx, documented status codes, content types and response schemas).
#
# It builds the binary, starts the emulator and `vod-ingest run --no-worker` on free loopback
# ports with a fresh database and RabbitMQ names of its own, creates an API key, runs
# schemathesis against the public listener (and the admin operations against the admin
# listener), then stops what it started and drops the database.
#
# Usage: scripts/schemathesis.sh [extra schemathesis arguments]
#   SCHEMATHESIS_OPTIONAL=1  skip (exit 0) when schemathesis cannot be installed from PyPI
#   SCHEMATHESIS_VENV        virtualenv to create/reuse (default: target/schemathesis-venv)
#   SCHEMATHESIS_EXAMPLES    test cases per operation and phase (default 100)
#   DATABASE_URL             any database on the server to use (default: postgres on 127.0.0.1)
#   AMQP_URL                 RabbitMQ (default: guest on 127.0.0.1)
#   PYTHON                   interpreter for the venv (default: python3)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
venv="${SCHEMATHESIS_VENV:-$target_dir/schemathesis-venv}"
# A version we have run against: checks and options change between major versions.
spec="schemathesis>=4.3,<5"

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    if ! "$venv/bin/pip" install --quiet "$spec"; then
        if [[ "${SCHEMATHESIS_OPTIONAL:-0}" == 1 ]]; then
            echo "schemathesis: SKIPPED: schemathesis could not be installed from PyPI" >&2
            exit 0
        fi
        exit 1
    fi
fi
py="$venv/bin/python"

cargo build --quiet --bin vod-ingest
bin="$target_dir/debug/vod-ingest"

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
emulator_port="$(free_port)"
http_port="$(free_port)"
admin_port="$(free_port)"
run_id="$("$py" -c 'import secrets; print(secrets.token_hex(6))')"
server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database="vod_ingest_schemathesis_$run_id"
# The same server, another database: swap the URL's path.
db_url="$("$py" -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$server_url" "$database")"
# `test.` names are what .ci/run clears after an interrupted run.
prefix="test.schemathesis-$run_id"
work="$(mktemp -d)"
callback_key="schemathesis-callback-key"
admin_token="$("$py" -c 'import secrets; print(secrets.token_urlsafe(24))')"

export DATABASE_URL="$db_url"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export VOD_INGEST_AMQP_PREFIX="$prefix"
export ALIBABA_CLOUD_ACCESS_KEY_ID=emulator-access-key-id
export ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-access-key-secret
export VOD_ENDPOINT="http://127.0.0.1:$emulator_port" STS_ENDPOINT="http://127.0.0.1:$emulator_port"
export VOD_CALLBACK_URL="http://127.0.0.1:$http_port/callbacks/vod" VOD_CALLBACK_AUTH_KEYS="$callback_key"
export VOD_INGEST_STS_ROLE_ARN=acs:ram::1234567890123456:role/vod-client-upload
export VOD_INGEST_HTTP_ADDR="127.0.0.1:$http_port" VOD_INGEST_ADMIN_ADDR="127.0.0.1:$admin_port"
export VOD_INGEST_ADMIN_TOKEN="$admin_token"
export RUST_LOG="${RUST_LOG:-warn}"

pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    "$py" - "$server_url" "$database" <<'EOF' || true
import subprocess, sys
# psql reads the server URL as a connection string; the database is ours alone.
subprocess.run(["psql", sys.argv[1], "-qc", f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)'],
               check=False, stdout=subprocess.DEVNULL)
EOF
    if command -v rabbitmqctl >/dev/null 2>&1; then
        timeout 60 rabbitmqctl -q eval "
            P = <<\"$prefix\">>,
            [catch rabbit_amqqueue:delete(Q, false, false, <<\"schemathesis\">>) || Q <- rabbit_amqqueue:list(),
             begin {resource, _, queue, N} = amqqueue:get_name(Q), binary:match(N, P) =:= {0, byte_size(P)} end],
            [catch rabbit_exchange:delete(element(2, X), false, <<\"schemathesis\">>) || X <- rabbit_exchange:list(),
             begin {resource, _, exchange, N} = element(2, X), binary:match(N, P) =:= {0, byte_size(P)} end],
            ok." >/dev/null 2>&1 || true
    fi
    if [[ $status -ne 0 ]]; then
        for log in "$work"/*.log; do
            echo "--- $log" >&2
            tail -n 30 "$log" >&2
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

wait_http() { # wait_http <url> <pid>
    for _ in $(seq 1 150); do
        if "$py" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$2" 2>/dev/null; then
            echo "schemathesis: the process serving $1 exited" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "schemathesis: $1 did not answer" >&2
    return 1
}

"$bin" emulator --listen "127.0.0.1:$emulator_port" --data-dir "$work/emulator" \
    --callback-url "$VOD_CALLBACK_URL" --callback-key "$callback_key" >"$work/emulator.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$emulator_port/_emulator/stats" "${pids[-1]}"

"$bin" migrate >"$work/migrate.log" 2>&1
# A budget that generated requests cannot use up: 429 is documented, but it would hide the rest.
key="$("$bin" api-key create --name schemathesis --allow-sts --requests-per-minute 1000000 2>>"$work/migrate.log")"
"$bin" run --no-worker >"$work/service.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$http_port/healthz" "${pids[-1]}"

checks="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}"
common=(--checks "$checks" --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" --workers 1
        --seed "${SCHEMATHESIS_SEED:-$RANDOM}" --no-color --suppress-health-check too_slow)
schema="http://127.0.0.1:$http_port/openapi.json"

# The public listener: client API, upload page, document, callbacks, /healthz. The callback
# operation is included: without VOD's signature it must answer 401, as documented, whatever
# the body, and never fail.
echo "schemathesis: public listener"
"$venv/bin/schemathesis" run "$schema" --exclude-tag admin \
    --header "Authorization: Bearer $key" "${common[@]}" "$@"

# The operators' operations live on the admin listener, behind its token. The document's links
# are between client API operations, so there is no stateful phase here.
echo "schemathesis: admin listener"
"$venv/bin/schemathesis" run "$schema" --url "http://127.0.0.1:$admin_port" --include-tag admin \
    --phases examples,coverage,fuzzing \
    --header "Authorization: Bearer $admin_token" "${common[@]}" "$@"
