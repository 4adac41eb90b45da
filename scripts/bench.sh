#!/usr/bin/env bash
# Upload benchmark: vod-ingest against the official Python SDK (oss2.resumable_upload), both
# uploading the same generated file to the same local emulator (VOD + STS + OSS) with the same
# part size, parallelism and multipart threshold.
#
# Usage: scripts/bench.sh [SIZE] [PART_SIZE] [PARALLELISM]      e.g. scripts/bench.sh 1G 8M 4
#   SIZE, PART_SIZE take K/M/G suffixes (binary: 1M = 1 MiB); defaults 1G 8M 4.
# Environment:
#   BENCH_RUNS        uploads per side (default 1); sides alternate; each side's fastest run is
#                     reported, except peak RSS, the largest over its runs
#   BENCH_THRESHOLD   multipart threshold for both sides (default 32M, vod-ingest's default)
#   BENCH_DIR         parent of the run's scratch dir (file + emulator data; default ${TMPDIR:-/tmp})
#   BENCH_DATABASE_URL  database for vod-ingest's job rows
#                     (default postgres://postgres@127.0.0.1:5432/vod_ingest_bench, created if missing)
#   BENCH_VENV        virtualenv for the SDKs (default: $CARGO_TARGET_DIR or target/, /sdk-venv)
#   PYTHON            interpreter for the venv (default python3)
#
# Each uploading process is measured from outside by /usr/bin/time: wall time, user + system
# CPU (the process and its waited-for children) and peak RSS (max resident set). For oss2 that
# process is the Python interpreter, so its figures include interpreter start-up and imports
# (~0.4 s); the upload phase alone is printed below the table. Throughput is file bytes / wall
# seconds in MB/s (10^6 B/s); "MB/s until Complete" divides by the time from the process's start
# to the emulator receiving CompleteMultipartUpload (all parts stored), which leaves out the
# emulator's slow assembly of the object. The page cache is warmed by reading the file before every run,
# and dirty pages are synced first, so both sides start from the same state.
# The emulator, both clients, PostgreSQL and the kernel share the machine: on a machine where
# other work runs (a build...), run it as `nice -n -19 scripts/bench.sh ...` (root) or wait; the
# report warns when other programs took CPU during a run.
set -euo pipefail

size_arg="${1:-1G}"
part_arg="${2:-8M}"
parallelism="${3:-4}"
runs="${BENCH_RUNS:-1}"
threshold_arg="${BENCH_THRESHOLD:-32M}"

to_bytes() {
    local v="${1^^}" n mult=1
    v="${v%B}"
    v="${v%I}"
    case "$v" in
        *K) mult=1024; n="${v%K}" ;;
        *M) mult=$((1024 * 1024)); n="${v%M}" ;;
        *G) mult=$((1024 * 1024 * 1024)); n="${v%G}" ;;
        *) n="$v" ;;
    esac
    if ! [[ "$n" =~ ^[0-9]+$ ]]; then
        echo "bench.sh: not a size: $1" >&2
        exit 2
    fi
    echo $((n * mult))
}
size="$(to_bytes "$size_arg")"
part_size="$(to_bytes "$part_arg")"
threshold="$(to_bytes "$threshold_arg")"
if ! [[ "$parallelism" =~ ^[1-9][0-9]*$ && "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: PARALLELISM and BENCH_RUNS must be positive integers" >&2
    exit 2
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "bench.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
venv="${BENCH_VENV:-$target_dir/sdk-venv}"
bin="$target_dir/release/vod-ingest"

echo "building vod-ingest (release)..." >&2
cargo build --quiet --release --bin vod-ingest

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import aliyunsdkcore, aliyunsdkvod, oss2' 2>/dev/null; then
    echo "installing oss2, aliyun-python-sdk-core, aliyun-python-sdk-vod into $venv..." >&2
    "$venv/bin/pip" install --quiet oss2 aliyun-python-sdk-core aliyun-python-sdk-vod
fi
py="$venv/bin/python"
sdk_versions="$("$py" - <<'EOF'
import os
import sys
from importlib.metadata import version
import crcmod  # oss2 computes CRC-64 with crcmod; without its C extension that is pure Python
ext = sys.modules["crcmod.crcmod"]._usingExtension
print(f"oss2 {version('oss2')}, aliyun-python-sdk-core {version('aliyun-python-sdk-core')}, "
      f"Python {sys.version.split()[0]}, crcmod C extension: {'yes' if ext else 'NO (pure Python CRC: oss2 is handicapped)'}")
EOF
)"

work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/vod-ingest-bench.XXXXXX")"
emulator_pid=""
watcher_pid=""
cleanup() {
    if [[ -n "$watcher_pid" ]]; then
        kill "$watcher_pid" 2>/dev/null || true
    fi
    if [[ -n "$emulator_pid" ]]; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

file="$work/bench.mp4"
echo "generating $size bytes of random data in $file..." >&2
head -c "$size" /dev/urandom >"$file"

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" emulator --listen "127.0.0.1:$port" --data-dir "$work/emulator" >"$work/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 1 100); do
    if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_emulator/stats', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$emulator_pid" 2>/dev/null; then
        echo "emulator exited:" >&2
        cat "$work/emulator.log" >&2
        exit 1
    fi
    sleep 0.1
done

export ALIBABA_CLOUD_ACCESS_KEY_ID=emulator-access-key-id
export ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-access-key-secret
export VOD_ENDPOINT="http://127.0.0.1:$port"
export DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/vod_ingest_bench}"
export EMULATOR_ENDPOINT="127.0.0.1:$port"
export RUST_LOG="${RUST_LOG:-warn}"

clk_tck="$(getconf CLK_TCK)"
emulator_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$emulator_pid/stat"; }
# Busy CPU time of the whole machine (user, nice, system, irq, softirq, steal), in ticks.
machine_cpu_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# User-mode CPU only, of the machine and of the emulator: loopback TCP and page-cache writeback
# are kernel work, so user-mode time left over points at other programs (compilers...).
machine_user_ticks() { awk '$1 == "cpu" { print $2 + $3; exit }' /proc/stat; }
emulator_user_ticks() { awk '{ print $14 }' "/proc/$emulator_pid/stat"; }

# Notes (in $1) the wall-clock time at which the emulator receives CompleteMultipartUpload: the
# client sends it once every part is stored, and the emulator then assembles the object, which
# takes long (see `docs/benchmarks.md`). Polls the emulator's counters every 50 ms.
watch_complete() {
    "$py" - "$port" "$1" <<'PYEOF' &
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/_emulator/stats"
count = lambda: json.load(urllib.request.urlopen(url, timeout=5))["requests"].get("CompleteMultipartUpload", 0)
first = count()
open(sys.argv[2] + ".ready", "w").close()
while count() == first:
    time.sleep(0.05)
with open(sys.argv[2], "w") as f:
    print(f"{time.time():.3f}", file=f)
PYEOF
    watcher_pid=$!
    while [[ ! -e "$1.ready" ]] && kill -0 "$watcher_pid" 2>/dev/null; do sleep 0.02; done
}

# run SIDE N: one measured upload; appends
# "side wall user sys maxrss_kb emu_cpu phase_s phase_cpu parts_s other_cpu" to results, where
# other_cpu is what the rest of the machine used meanwhile (the poller, kernel writeback, and
# anything else running: a noisy neighbour shows up here)
results="$work/results"
run() {
    local side="$1" n="$2" t0 t1 m0 m1 mu0 mu1 eu0 eu1 phase_s="-" phase_cpu="-" parts_s="-" start
    sync
    cat "$file" >/dev/null
    rm -f "$work/complete" "$work/complete.ready"
    watch_complete "$work/complete"
    t0="$(emulator_cpu_ticks)"
    m0="$(machine_cpu_ticks)"
    mu0="$(machine_user_ticks)"
    eu0="$(emulator_user_ticks)"
    start="$(date +%s.%N)"
    if [[ "$side" == vod-ingest ]]; then
        /usr/bin/time -f '%e %U %S %M' -o "$work/time" \
            "$bin" upload "$file" --kind video --part-size "$part_size" \
            --part-parallelism "$parallelism" --multipart-threshold "$threshold" \
            >"$work/out.$side.$n" 2>"$work/err.$side.$n" || {
            echo "vod-ingest upload failed:" >&2
            cat "$work/err.$side.$n" >&2
            exit 1
        }
        # "uploaded JOB (... MiB) as video ID in 9.87 s: 108.8 MB/s"
        phase_s="$(sed -n 's/^uploaded .* in \([0-9.]*\) s: .*/\1/p' "$work/err.$side.$n" | tail -n 1)"
        phase_s="${phase_s:--}"
    else
        /usr/bin/time -f '%e %U %S %M' -o "$work/time" \
            "$py" "$root/scripts/bench_oss2.py" "$file" "$part_size" "$parallelism" "$threshold" \
            >"$work/out.$side.$n" 2>"$work/err.$side.$n" || {
            echo "oss2 upload failed:" >&2
            cat "$work/err.$side.$n" >&2
            exit 1
        }
        phase_s="$(sed -n 's/^oss2-phase upload_s=\([0-9.]*\) .*/\1/p' "$work/err.$side.$n")"
        phase_cpu="$(sed -n 's/^oss2-phase .*upload_cpu_s=\([0-9.]*\) .*/\1/p' "$work/err.$side.$n")"
    fi
    t1="$(emulator_cpu_ticks)"
    m1="$(machine_cpu_ticks)"
    mu1="$(machine_user_ticks)"
    eu1="$(emulator_user_ticks)"
    kill "$watcher_pid" 2>/dev/null || true
    wait "$watcher_pid" 2>/dev/null || true
    if [[ -s "$work/complete" ]]; then
        parts_s="$(awk -v a="$start" -v b="$(cat "$work/complete")" 'BEGIN { printf "%.3f", b - a }')"
    fi
    local emu_cpu other_cpu other_user
    emu_cpu="$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    # shellcheck disable=SC2046 # word splitting of the time file on purpose
    other_cpu="$(awk -v a="$m0" -v b="$m1" -v hz="$clk_tck" -v e="$emu_cpu" \
        -v u="$(cut -d' ' -f2 "$work/time")" -v s="$(cut -d' ' -f3 "$work/time")" \
        'BEGIN { x = (b - a) / hz - e - u - s; printf "%.2f", x < 0 ? 0 : x }')"
    other_user="$(awk -v a="$mu0" -v b="$mu1" -v e0="$eu0" -v e1="$eu1" -v hz="$clk_tck" \
        -v u="$(cut -d' ' -f2 "$work/time")" \
        'BEGIN { x = (b - a - (e1 - e0)) / hz - u; printf "%.2f", x < 0 ? 0 : x }')"
    echo "$side $(cat "$work/time") $emu_cpu $phase_s $phase_cpu $parts_s $other_cpu $other_user" >>"$results"
    echo "  run $n $side: $(tail -n 1 "$results" | cut -d' ' -f2-) (wall user sys maxrss_kb emulator_cpu phase_s phase_cpu parts_s other_cpu other_user)" >&2
}

echo "uploading with part size $part_size, parallelism $parallelism, threshold $threshold, $runs run(s) per side..." >&2
for n in $(seq 1 "$runs"); do
    run vod-ingest "$n"
    run oss2 "$n"
done

"$py" - "$results" "$size" "$part_size" "$parallelism" "$threshold" "$runs" "$sdk_versions" <<'EOF'
import os
import sys

path, size, part, par, threshold, runs, versions = sys.argv[1], *map(int, sys.argv[2:7]), sys.argv[7]
num = lambda s: None if s == "-" else float(s)
rows = {}
for line in open(path):
    side, wall, user, sys_, rss_kb, emu, phase, phase_cpu, parts_s, other, other_user = line.split()
    rows.setdefault(side, []).append(dict(
        wall=float(wall), cpu=float(user) + float(sys_), rss=int(rss_kb) / 1024, emu=float(emu),
        phase=num(phase), phase_cpu=num(phase_cpu), parts_s=num(parts_s), other=float(other), other_user=float(other_user)))

gib = size / 2**30
def best(side):
    runs_ = rows[side]
    b = min(runs_, key=lambda r: r["wall"])
    return dict(b, mbps=size / b["wall"] / 1e6, cpu_gib=b["cpu"] / gib, rss=max(r["rss"] for r in runs_),
                emu_gib=b["emu"] / gib,
                parts_mbps=size / b["parts_s"] / 1e6 if b["parts_s"] else None)
v, o = best("vod-ingest"), best("oss2")
tput_ratio = v["mbps"] / o["mbps"]
cpu_ratio = v["cpu_gib"] / o["cpu_gib"] if o["cpu_gib"] else float("inf")
ok = lambda c: "PASS" if c else "FAIL"
fmt = lambda x, w, p=1: f"{x:{w}.{p}f}" if x is not None else f"{'-':>{w}}"

print(f"size {size / 2**20:.1f} MiB, part size {part / 2**20:g} MiB, parallelism {par}, "
      f"multipart threshold {threshold / 2**20:g} MiB, best of {runs}")
print(versions)
print(f"{'':12}{'MB/s':>7}{'CPU s/GiB':>11}{'peak RSS MiB':>14}{'wall s':>8}"
      f"{'MB/s until Complete':>21}{'emulator CPU s/GiB':>20}")
for name, r in (("vod-ingest", v), ("oss2", o)):
    print(f"{name:12}{r['mbps']:7.1f}{r['cpu_gib']:11.2f}{r['rss']:14.1f}{r['wall']:8.2f}"
          f"{fmt(r['parts_mbps'], 21)}{r['emu_gib']:20.2f}")
parts_ratio = v["parts_mbps"] / o["parts_mbps"] if v["parts_mbps"] and o["parts_mbps"] else None
print(f"{'ratio':12}{tput_ratio:6.2f}x{cpu_ratio:11.2f}{'-':>14}{'':8}"
      + (f"{parts_ratio:20.2f}x" if parts_ratio else f"{'-':>21}"))
if v["parts_s"] and o["parts_s"]:
    print(f"from CompleteMultipartUpload reaching the emulator (which then assembles the object) to exit: "
          f"vod-ingest {v['wall'] - v['parts_s']:.2f} s, oss2 {o['wall'] - o['parts_s']:.2f} s")
parts = []
if v["phase"]:
    parts.append(f"vod-ingest {size / v['phase'] / 1e6:.1f} MB/s")
if o["phase"]:
    parts.append(f"oss2 {size / o['phase'] / 1e6:.1f} MB/s, {o['phase_cpu'] / gib:.2f} CPU s/GiB")
print(f"rest of the machine meanwhile (loopback TCP, page-cache writeback, PostgreSQL, poller, others): "
      f"{v['other']:.2f} CPU s during vod-ingest's run ({v['other_user']:.2f} in user mode), "
      f"{o['other']:.2f} during oss2's ({o['other_user']:.2f} in user mode)")
cores = os.cpu_count() or 1
if max(v["other_user"] / v["wall"], o["other_user"] / o["wall"]) > 0.25:
    print(f"WARNING: other programs used more than a quarter of a core of this {cores}-core machine "
          "during a run; these figures are noisy, run again on a quiet machine")
print("upload phase only (no start-up, imports, DB, CreateUploadVideo): " + "; ".join(parts))
print(f"targets: throughput >= 1.5x oss2: {ok(tput_ratio >= 1.5)}"
      + (f" (until Complete: {ok(parts_ratio >= 1.5)})" if parts_ratio else "")
      + f"; CPU/GiB <= 1/3 oss2: {ok(cpu_ratio <= 1 / 3)}; RSS < 100 MiB: {ok(v['rss'] < 100)}")
EOF
