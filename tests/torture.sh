#!/usr/bin/env bash
# The torture run (docs/reliability.md): CYCLES kill -9s of runlogd under a
# mixed load (tests/api/torture_test.cc), each followed by the checks that
# nothing acknowledged was lost or doubled, the views equal a rebuild and the
# audit (chain and signed checkpoints included) is clean.
#   tests/torture.sh [CYCLES]     (default 50; ctest runs 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNLOG_TORTURE_CYCLES=${1:-50} exec build/tests/torture_test --gtest_brief=0
