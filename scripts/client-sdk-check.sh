#!/usr/bin/env bash
# VOD's official client upload SDKs, unmodified, against the service and the emulator.
#
#   scripts/client-sdk-check.sh SDK_DIR [MINI_PROGRAM_SDK_JS]
#
# SDK_DIR: a checkout of github.com/aliyun/alibabacloud-vodupload-sdk (the Web SDK's built files
#   are read from h5/UploadSDK/aliyun-upload-sdk-demo/vue-demo/dist/lib/aliyun-upload-sdk/).
# MINI_PROGRAM_SDK_JS: VOD's WeChat mini-program SDK build (aliyun-upload-sdk-1.0.x.min.js), which
#   is published only inside mini-program projects; skipped when not given.
#
# Neither is in a package registry, and neither may be copied into this repository: fetch them
# yourself. What runs:
#   - the Web SDK in headless Chromium, on its own origin (http://app.localhost:PORT), in
#     credential mode (POST /v1/uploads) and in STS mode (POST /v1/sts-token; the SDK calls
#     https://vod.cn-shanghai.aliyuncs.com, which Chromium maps to the emulator's HTTPS);
#   - the mini-program SDK in Node under a small `wx` stand-in whose uploadFile sends the real
#     multipart PostObject to <bucket>.localhost (resolved to loopback, as WeChat's runtime and
#     browsers resolve *.localhost), in credential and STS mode, and the same stand-in sending
#     the form the service signs (`"upload_method": "post_form"`);
# each upload must end with its job recorded as completed and the stored bytes equal to the file.
# Needs PostgreSQL and RabbitMQ (as .ci/run starts them), Node.js with `npm ci --prefix web`, and
# Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

sdk_dir=${1:?usage: scripts/client-sdk-check.sh SDK_DIR [MINI_PROGRAM_SDK_JS]}
mini_sdk=${2:-}
[[ -d "$sdk_dir/h5/UploadSDK" ]] || {
  echo "client-sdk-check: $sdk_dir is not a checkout of aliyun/alibabacloud-vodupload-sdk (no h5/UploadSDK)" >&2
  exit 2
}
[[ -z "$mini_sdk" || -f "$mini_sdk" ]] || { echo "client-sdk-check: cannot read $mini_sdk" >&2; exit 2; }
[[ -d web/node_modules/ali-oss ]] || npm ci --prefix web --no-audit --no-fund --loglevel=error

cargo build --quiet
bin=target/debug/vod-ingest
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" postgres >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emu_port=$(free_port)
http_port=$(free_port)
admin_port=$(free_port)
db="vod_ingest_sdk_check_$$"
callback_key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

# The emulator: HTTP and HTTPS on one port, endpoints on `localhost` (see docs/clients.md).
"$bin" emulator --listen "127.0.0.1:$emu_port" --tls --public-url "http://localhost:$emu_port" \
  --data-dir "$work/emulator" --callback-url "http://127.0.0.1:$http_port/callbacks/vod" \
  --callback-key "$callback_key" >"$work/emulator.log" 2>&1 &
pids+=($!)

"$bin" migrate >"$work/migrate.log" 2>&1
ALIBABA_CLOUD_ACCESS_KEY_ID=emulator-access-key-id ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-access-key-secret \
  VOD_ENDPOINT="http://127.0.0.1:$emu_port" STS_ENDPOINT="http://127.0.0.1:$emu_port" \
  VOD_CALLBACK_URL="http://127.0.0.1:$http_port/callbacks/vod" VOD_CALLBACK_AUTH_KEYS="$callback_key" \
  VOD_INGEST_HTTP_ADDR="127.0.0.1:$http_port" VOD_INGEST_ADMIN_ADDR="127.0.0.1:$admin_port" \
  VOD_INGEST_STS_ROLE_ARN=acs:ram::1234567890123456:role/vod-client-upload \
  VOD_INGEST_AMQP_PREFIX="sdkcheck.$$" VOD_INGEST_SOURCE_ROOTS="$work" \
  "$bin" run >"$work/service.log" 2>&1 &
pids+=($!)

for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null || {
  echo "client-sdk-check: the service did not become ready; its log:" >&2
  tail -n 30 "$work/service.log" >&2
  exit 1
}

key=$("$bin" api-key create --name "client SDK check" --allow-sts --allow-sts-refresh --origin '*' \
  | grep -o 'vik_[A-Za-z0-9_]*' | head -n1)

pass=0
fail=0
report() { # report <name> <ok?> <detail>
  if [[ $2 == ok ]]; then pass=$((pass + 1)); echo "PASS  $1  $3"; else fail=$((fail + 1)); echo "FAIL  $1  $3"; fi
}

# Waits for a job to be completed; prints its row as JSON.
job_completed() {
  local id=$1 body=""
  for _ in $(seq 60); do
    body=$(curl -fsS "http://127.0.0.1:$admin_port/v1/jobs/$id" 2>/dev/null || true)
    [[ $body == *'"state":"completed"'* ]] && { echo "$body"; return 0; }
    sleep 0.5
  done
  echo "$body"
  return 1
}

json_field() { node -e 'const o=JSON.parse(process.argv[1]); process.stdout.write(String(o[process.argv[2]] ?? ""))' "$1" "$2"; }

check_upload() { # check_upload <name> <driver output> <job id> <file>
  local name=$1 out=$2 job=$3 file=$4 row stored
  if ! row=$(job_completed "$job"); then
    report "$name" fail "job $job not completed: ${row:-no such job}"
    return
  fi
  if stored=$(node web/tests/sdk-check/verify-object.mjs --emulator "http://127.0.0.1:$emu_port" \
      --bucket "$(json_field "$out" bucket)" --object "$(json_field "$out" object)" --file "$file"); then
    report "$name" ok "job $job completed (origin $(json_field "$row" origin)), stored bytes equal the file: $stored"
  else
    report "$name" fail "stored bytes differ: $stored"
  fi
}

head -c $((3 * 1024 * 1024 + 4321)) /dev/urandom >"$work/clip.mp4"

for mode in credential sts; do
  if out=$(node web/tests/sdk-check/web-sdk.mjs --sdk-dir "$sdk_dir" --api "http://127.0.0.1:$http_port" \
      --key "$key" --emulator-port "$emu_port" --mode "$mode" --file "$work/clip.mp4" 2>"$work/web-$mode.err"); then
    job=$(json_field "$out" job_id)
    [[ -n $job ]] || job="sts:$(json_field "$out" video_id)"
    check_upload "web-sdk/$mode" "$out" "$job" "$work/clip.mp4"
  else
    report "web-sdk/$mode" fail "$(tail -n 5 "$work/web-$mode.err" | tr '\n' ' ')"
  fi
done

if [[ -n $mini_sdk ]]; then
  head -c $((700 * 1024 + 17)) /dev/urandom >"$work/mini.mp4"
  for mode in credential sts post_form; do
    if out=$(node web/tests/sdk-check/mini-program.mjs --sdk "$mini_sdk" --api "http://127.0.0.1:$http_port" \
        --key "$key" --file "$work/mini.mp4" --mode "$mode" --emulator-port "$emu_port" 2>"$work/mini-$mode.err"); then
      check_upload "mini-program/$mode" "$out" "$(json_field "$out" job_id)" "$work/mini.mp4"
    else
      report "mini-program/$mode" fail "$(tail -n 5 "$work/mini-$mode.err" | tr '\n' ' ')"
    fi
  done
else
  echo "SKIP  mini-program (give the SDK file as the second argument)"
fi

echo "client-sdk-check: $pass PASS / $fail FAIL"
[[ $fail -eq 0 ]]
