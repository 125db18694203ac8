#!/usr/bin/env bash
# The Debian package, as a user gets it: built by CPack from BUILD_DIR,
# unpacked into a fresh directory tree, its runlogd started from there and
# serving a plan with a sandboxed step (the packaged helper), then stopped
# with SIGTERM; its systemd unit verified by systemd-analyze.
#   tests/package/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/runlog-package-XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
cpack -G DEB -B "$work/out" --config "$build/CPackConfig.cmake" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/out/runlog_*.deb)
echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) kB"
info=$(dpkg-deb --info "$deb")
echo "$info" | grep -q '^ Depends:.*librocksdb' || { echo "no librocksdb in Depends:"; echo "$info"; exit 1; }
echo "$info" | grep -q 'postinst' || { echo "no postinst"; exit 1; }
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/runlogd ./usr/bin/runlog ./usr/bin/runlog-sandbox \
         ./usr/lib/systemd/system/runlogd.service ./etc/default/runlogd; do
  echo "$contents" | grep -q " $f\$" || { echo "missing $f"; echo "$contents"; exit 1; }
done

root="$work/root"
dpkg -x "$deb" "$root"
# The unit, pointed at the unpacked runlogd, passes systemd's own check.
sed "s|/usr/bin/runlogd|$root/usr/bin/runlogd|" "$root/usr/lib/systemd/system/runlogd.service" \
  >"$work/runlogd.service"
systemd-analyze verify "$work/runlogd.service"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
key=package-test-admin-key
RUNLOG_ADMIN_KEY=$key "$root/usr/bin/runlogd" --listen "127.0.0.1:$port" --data "$work/data" \
  >"$work/runlogd.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$url/readyz" >/dev/null || { cat "$work/runlogd.log"; exit 1; }
id=$(curl -sf "$url/v1/tasks" -H "Authorization: Bearer $key" \
  -d '{"type":"package-check","plan":{"steps":[{"tool":"python_sandbox","input":{"code":"print(6*7)"}}]}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
status=""
for _ in $(seq 100); do
  status=$(curl -sf "$url/v1/tasks/$id" -H "Authorization: Bearer $key" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  case $status in succeeded|failed|cancelled) break ;; esac
  sleep 0.1
done
[ "$status" = succeeded ] || { echo "the plan ended $status"; curl -s "$url/v1/tasks/$id" -H "Authorization: Bearer $key"; cat "$work/runlogd.log"; exit 1; }
kill -TERM $pid
wait $pid
rc=$?
pid=""
[ $rc -eq 0 ] || { echo "runlogd exited $rc on SIGTERM"; cat "$work/runlogd.log"; exit 1; }
echo "package: installed in $root, served a sandboxed plan, stopped cleanly"
