#!/usr/bin/env bash
# Checks the emulator against Alibaba Cloud's official Python SDKs, used unmodified: the classic
# ones (aliyun-python-sdk-core, -vod, -sts; signature V1) and oss2 in scripts/sdk_check.py, and
# today's V2.0 SDKs (alibabacloud-vod20170321, alibabacloud-sts20150401; signature V3, their
# defaults) in scripts/sdk_check_v2.py.
#
# Usage: scripts/sdk-check.sh
#   EMULATOR_CMD   command that starts the emulator; it gets `--listen 127.0.0.1:PORT
#                  --data-dir DIR` appended (default: `vod-ingest emulator`)
#   SDK_CHECK_OPTIONAL=1  skip (exit 0) when the SDKs cannot be installed from PyPI
#   SDK_VENV       virtualenv to create/reuse (default: target/sdk-venv)
#   PYTHON         interpreter for the venv (default: python3)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
venv="${SDK_VENV:-$target_dir/sdk-venv}"

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
# The V2.0 SDKs (signature V3) are pinned: they are what sdk_check_v2.py was written against.
if ! "$venv/bin/python" -c 'import aliyunsdkcore, aliyunsdkvod, aliyunsdksts, oss2, alibabacloud_vod20170321, alibabacloud_sts20150401' 2>/dev/null; then
    if ! "$venv/bin/pip" install --quiet aliyun-python-sdk-core aliyun-python-sdk-vod aliyun-python-sdk-sts oss2 \
        alibabacloud-vod20170321==3.12.1 alibabacloud-sts20150401==1.2.0; then
        if [[ "${SDK_CHECK_OPTIONAL:-0}" == 1 ]]; then
            echo "sdk-check: SKIPPED: the official SDKs could not be installed from PyPI" >&2
            exit 0
        fi
        exit 1
    fi
fi

if [[ -z "${EMULATOR_CMD:-}" ]]; then
    cargo build --quiet --bin vod-ingest
    EMULATOR_CMD="$target_dir/debug/vod-ingest emulator"
fi
echo "emulator: $EMULATOR_CMD"

port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
data_dir="$(mktemp -d)"
log="$data_dir/emulator.log"
# shellcheck disable=SC2086 # EMULATOR_CMD is a command line on purpose
$EMULATOR_CMD --listen "127.0.0.1:$port" --data-dir "$data_dir/data" >"$log" 2>&1 &
emulator_pid=$!
cleanup() {
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_emulator/stats', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$emulator_pid" 2>/dev/null; then
        echo "emulator exited:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

status=0
EMULATOR_ENDPOINT="127.0.0.1:$port" "$venv/bin/python" scripts/sdk_check.py || status=1
# Today's official SDKs, signature V3, on their defaults.
EMULATOR_ENDPOINT="127.0.0.1:$port" "$venv/bin/python" scripts/sdk_check_v2.py || status=1
exit "$status"
