#!/usr/bin/env bash
# Installs runlog's build dependencies from Debian packages and configures the
# CMake build in build/. Idempotent: packages already present are skipped, and
# an existing build/ is reconfigured in place (ccache keeps rebuilds cheap).
#   BUILD_TYPE=RelWithDebInfo (default) | Debug | Asan | Tsan
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ pkg-config ccache python3 python3-cryptography
  librdkafka-dev librocksdb-dev rapidjson-dev libpistache-dev prometheus-cpp-dev
  libssl-dev libseccomp-dev libcurl4-openssl-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev libabsl-dev tzdata
  kcat clang-16 libclang-rt-16-dev llvm-16 python3-yaml python3-jsonschema prometheus
  dpkg-dev systemd curl nodejs chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The dashboard's browser test drives chromium with puppeteer-core from npm
# (tests/ui/package-lock.json pins it); Debian's nodejs may come without npm.
command -v npm >/dev/null ||
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
if [ ! -d tests/ui/node_modules ] || [ tests/ui/package-lock.json -nt tests/ui/node_modules ]; then
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "${launcher[@]}" >/dev/null
echo "setup: configured $BUILD_DIR ($BUILD_TYPE)"
