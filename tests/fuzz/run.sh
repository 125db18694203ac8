#!/usr/bin/env bash
# Fuzzes every target with libFuzzer for SECONDS each (default 60), in a clang
# build of its own (build-fuzz/, ASan + UBSan; clang-16 and libclang-rt-16-dev,
# which infra/setup.sh installs), starting from the seed corpus
# in tests/fuzz/corpus/<target>/. Prints each target's executions per second
# and total; a crash's input is kept in build-fuzz/crashes/ and the run fails.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json record plan math cron receipt api)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
CC=clang-16 CXX=clang++-16 cmake -S . -B build-fuzz -DRUNLOG_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j2 --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
mkdir -p build-fuzz/crashes
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
export UBSAN_OPTIONS=suppressions=$PWD/tests/fuzz/ubsan.supp:print_stacktrace=1:halt_on_error=1
symbolizer=$(command -v llvm-symbolizer-16 llvm-symbolizer | head -1 || true)
[ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer
failed=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  log=build-fuzz/fuzz_$t.log
  if ! build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 \
      -artifact_prefix=build-fuzz/crashes/${t}- -print_final_stats=1 \
      "$corpus" tests/fuzz/corpus/$t >"$log" 2>&1; then
    failed=1
    echo "fuzz_$t: FAILED (input in build-fuzz/crashes/, log in $log)"
    grep -m3 -E "ERROR|SUMMARY|abort" "$log" || true
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  printf 'fuzz_%-8s %10s runs %8s exec/s in %ss\n' "$t" "$runs" "$rate" "$seconds"
done
exit $failed
