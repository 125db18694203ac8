#!/usr/bin/env bash
# The soak run (docs/reliability.md): runlogd on the embedded log under a
# mixed load at half its measured capacity for MINUTES minutes (default 30):
# worker tasks created, claimed and completed at a fixed rate (runlog bench's
# end-to-end phase, one minute at a time), plus a plan with a sandboxed step
# every 2 s. Prints, per minute: the end-to-end p99, errors, runlogd's RSS
# and open file descriptors, and the data's table files and size; fails if
# any request failed or if RSS or fds at the end are more than 10% above
# their value at minute 5.
#   tests/soak.sh [MINUTES] [RATE]   (RATE: tasks/s; default half the end-to-end
#   capacity, measured first on a server of its own)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
rate=${2:-}
dir=$(mktemp -d /tmp/runlog-soak-XXXXXX)
port=18391
url=http://127.0.0.1:$port
export RUNLOG_ADMIN_KEY=soak-admin-key
start() {  # runlogd on DIR, in the background; sets pid
  build/runlogd --listen 127.0.0.1:$port --data "$1" >"$1.log" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 100); do curl -sf $url/readyz >/dev/null && break; sleep 0.1; done
}
pid=""
# The data (gigabytes by the end) goes with the run unless SOAK_KEEP=1.
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; [ -n "${SOAK_KEEP:-}" ] || rm -rf "$dir"' EXIT
if [ -z "$rate" ]; then
  # Capacity: the end-to-end load below, offered far more than it can take,
  # on a server of its own (its backlog must not start the soak).
  start "$dir/capacity"
  capacity=$(build/runlog bench --url $url --clients 16 --seconds 10 --rate 10000 --phases e2e |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["e2e"]["per_s"])')
  kill $pid && wait $pid || true
  rate=$(python3 -c "print(int($capacity / 2))")
  echo "soak: capacity ${capacity} tasks/s end to end; offering ${rate} tasks/s"
fi
start "$dir/data"
# A plan with a sandboxed step every 2 s, beside the bench.
(while kill -0 $pid 2>/dev/null; do
  curl -s -o /dev/null -w '%{http_code}\n' $url/v1/tasks -H "Authorization: Bearer $RUNLOG_ADMIN_KEY" \
    -d '{"type":"soak-plan","input":{},"plan":{"steps":[{"tool":"python_sandbox","input":{"code":"print(1)"}},{"tool":"math","input":{"expression":"1+1"}}]}}'
  sleep 2
done) >"$dir/plans.log" 2>&1 &
echo "minute,p50_ms,p99_ms,completed,errors,rss_kb,fds,sst_files,data_mb,cache_mb,memtables_mb"
errors=0
for m in $(seq 1 "$minutes"); do
  out=$(build/runlog bench --url $url --clients 16 --seconds 58 --warmup 0 --rate "$rate" --phases e2e)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  fds=$(ls /proc/$pid/fd | wc -l)
  # Table files on disk (a store keeps at most 10 open) and the stores'
  # shared memory budget as runlogd reports it.
  sst=$(find "$dir/data" -name "*.sst" | wc -l)
  data_mb=$(du -sm "$dir/data" | cut -f1)
  stores=$(curl -s $url/metrics | awk '/^runlog_store_memory_bytes\{kind="block_cache"\}/ {c=$2}
    /^runlog_store_memory_bytes\{kind="memtables"\}/ {m=$2} END {printf "%d,%d", c/1048576, m/1048576}')
  line=$(python3 -c "
import json,sys
d=json.loads(sys.argv[1]); e=d['e2e']
print('%d,%.1f,%.1f,%d,%d' % ($m, e['p50_ms'], e['p99_ms'], e['n'], d.get('errors', 0)))" "$out")
  echo "$line,$rss,$fds,$sst,$data_mb,$stores"
  errors=$((errors + $(echo "$line" | cut -d, -f5)))
  [ "$m" -eq 5 ] && rss5=$rss && fds5=$fds
done
plan_errors=$(grep -vc '^201$' "$dir/plans.log" || true)
echo "soak: $errors bench errors, $plan_errors plan creates not 201"
status=0
[ "$errors" -eq 0 ] && [ "$plan_errors" -eq 0 ] || status=1
if [ -n "${rss5:-}" ]; then
  python3 -c "
import sys
rss5,fds5,rss,fds=map(int,sys.argv[1:])
print('soak: RSS %d kB at minute 5, %d kB at the end (%+.1f%%); fds %d, %d (%+.1f%%)' % (rss5, rss, 100.0*(rss-rss5)/rss5, fds5, fds, 100.0*(fds-fds5)/fds5))
sys.exit(0 if rss <= rss5*1.1 and fds <= fds5*1.1 else 1)" "$rss5" "$fds5" "$rss" "$fds" || status=1
fi
exit $status
