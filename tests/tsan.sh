#!/usr/bin/env bash
# The ThreadSanitizer run (docs/reliability.md): configures build-tsan/ (build
# type Tsan), builds the tests of the concurrent parts -- the writer, the
# embedded log, the projector, the HTTP server and the executor -- and runs
# them with TSan halting on the first report. Any report fails the run;
# tests/tsan.supp lists what is suppressed, and why.
#   tests/tsan.sh [CTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(log_conformance_test embedded_log_test embedded_fault_test
       task_service_test snapshot_test views_test decider_test
       api_e2e_test streams_e2e_test plan_e2e_test)
BUILD_DIR=build-tsan BUILD_TYPE=Tsan ./infra/setup.sh
cmake --build build-tsan -j2 --target "${tests[@]}" runlogd runlog runlog-sandbox
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 suppressions=$PWD/tests/tsan.supp"
# Each test carries its executable's name as a label (tests/CMakeLists.txt).
# Not the Kafka backend: librdkafka starts its threads with C11 thrd_create,
# which GCC 12's TSan runtime does not intercept, and they crash in its
# allocator (docs/reliability.md).
ctest --test-dir build-tsan --output-on-failure -j2 -L "^($(IFS='|'; echo "${tests[*]}"))\$" \
  -E '/kafka|^KafkaLog' "$@"
