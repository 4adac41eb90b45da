#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after the other (`docs/development.md`, "Fuzzing").
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS     how long each target runs (default 120)
#   TARGET      the targets to run (default: all of them, see `cargo +nightly fuzz list`)
#   FUZZ_RUNS   also stop a target after this many executions (default: no limit)
#   FUZZ_JOBS   parallel fuzzing processes per target (default 1)
#
# The committed seeds in fuzz/corpus/<target>/ are only read; what the fuzzer learns goes to
# fuzz/target/corpus/<target>/ (kept between runs, not committed). A crash stops its target,
# leaves the input in fuzz/artifacts/<target>/ and makes the script exit 1 after the others ran.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${1:-120}"
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: installing the nightly toolchain (libFuzzer needs its sanitizer flags)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
# rustix 0.37 (under lapin) turns on `rustc_attrs` when the compiler is a nightly, and recent
# nightlies no longer have the attributes it then uses: allowing no unstable features makes its
# probe fail, so it builds as on stable. multer (the emulator's PostObject forms) asks for
# `doc_cfg` on any nightly, which is harmless: that one is allowed. cargo-fuzz adds its own
# flags after these.
export RUSTFLAGS="${RUSTFLAGS:-} -Zallow-features=doc_cfg"

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build

failed=()
for target in "${targets[@]}"; do
    work="$root/fuzz/target/corpus/$target"
    mkdir -p "$work"
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
    if [[ -n "${FUZZ_RUNS:-}" ]]; then
        args+=(-runs="$FUZZ_RUNS")
    fi
    if [[ "${FUZZ_JOBS:-1}" -gt 1 ]]; then
        args+=(-fork="$FUZZ_JOBS")
    fi
    log="$root/fuzz/target/$target.log"
    echo "fuzz: $target for ${seconds}s"
    if cargo +nightly fuzz run "$target" "$work" "$root/fuzz/corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
        runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
        echo "fuzz: $target: ${runs:-?} executions, no failure"
    else
        echo "fuzz: $target FAILED; the end of its log ($log):" >&2
        tail -n 40 "$log" >&2
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: failed: ${failed[*]}; reproduce with RUSTFLAGS=-Zallow-features=doc_cfg cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>" >&2
    exit 1
fi
