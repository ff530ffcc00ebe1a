#!/usr/bin/env bash
# Builds the fuzz targets with stable Rust (libFuzzer through libfuzzer-sys,
# SanitizerCoverage instrumentation, no sanitizer) and runs each for a
# bounded time and/or number of inputs, starting from a copy of the seed
# corpus in fuzz/corpus/<target>/ (the repository's corpus is never grown).
# Fails (non-zero) on any crash, timeout or out-of-memory.
#
# Usage: fuzz/run.sh [--seconds S] [--runs N] [--build-only] [target...]
#   --seconds S   stop each target after S seconds (default 15)
#   --runs N      stop each target after N inputs (default: no count limit)
#   --build-only  build the targets and stop
#   target...     only these targets (default: all of fuzz/fuzz_targets/)
# Environment:
#   DOCKERSHIM_FUZZ_TARGET_DIR  cargo target dir (default fuzz/target)
#   DOCKERSHIM_FUZZ_ARTIFACTS   where crashing inputs are kept
#                               (default fuzz/artifacts/<target>/)
#
# Per target it prints the inputs run and the rate (exec/s) libFuzzer
# reports. A crash leaves the input in the artifacts directory; reproduce it
# with fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>.
set -euo pipefail

cd "$(dirname "$0")"
fuzz_dir=$PWD
seconds=15
runs=
build_only=
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h | --help) sed -n '2,20p' "$fuzz_dir/run.sh"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in '' | *[!0-9]*) echo "--seconds wants a whole number" >&2; exit 2 ;; esac
case "$runs" in *[!0-9]*) echo "--runs wants a whole number" >&2; exit 2 ;; esac
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi

command -v cargo >/dev/null || { echo "error: cargo is missing" >&2; exit 1; }
command -v c++ >/dev/null || { echo "error: a C++ compiler (c++) is needed to build libFuzzer" >&2; exit 1; }

# The coverage instrumentation cargo-fuzz asks of nightly, spelled with
# stable flags; --cfg fuzzing is what libfuzzer-sys and crates check.
# --target keeps these flags off build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
target_dir=${DOCKERSHIM_FUZZ_TARGET_DIR:-$fuzz_dir/target}
bins=()
for t in "${targets[@]}"; do
  [ -f "fuzz_targets/$t.rs" ] || { echo "error: no fuzz target $t" >&2; exit 2; }
  bins+=(--bin "$t")
done
echo "==> building ${#targets[@]} fuzz targets ($target_dir)"
start=$(date +%s)
cargo build --locked --release --target "$triple" --target-dir "$target_dir" "${bins[@]}"
echo "built in $(($(date +%s) - start)) s"
[ -z "$build_only" ] || exit 0

work=$(mktemp -d "${TMPDIR:-/tmp}/dockershim-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
printf '%-16s %12s %10s %8s  %s\n' target inputs exec/s corpus result
for t in "${targets[@]}"; do
  corpus="$work/$t"
  mkdir -p "$corpus"
  if [ -d "corpus/$t" ]; then
    cp -r "corpus/$t/." "$corpus/"
  fi
  artifacts=${DOCKERSHIM_FUZZ_ARTIFACTS:-$fuzz_dir/artifacts}/$t
  mkdir -p "$artifacts"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
    -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ -z "$runs" ] || args+=(-runs="$runs")
  log="$work/$t.log"
  status=0
  "$target_dir/$triple/release/$t" "${args[@]}" "$corpus" >"$log" 2>&1 || status=$?
  inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $status)"
    failed+=("$t")
  fi
  printf '%-16s %12s %10s %8s  %s\n' "$t" "${inputs:-?}" "${rate:-?}" "$size" "$result"
  if [ "$status" -ne 0 ]; then
    grep -v '^#\|^INFO\|^stat::' "$log" | tail -40 >&2
    echo "crashing input kept in $artifacts/" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "error: fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
