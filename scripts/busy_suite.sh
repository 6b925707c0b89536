#!/usr/bin/env bash
# The whole suite on a busy machine: RUNS full runs in a row (default 3), then one in a random order,
# each with HOGS CPU-bound processes beside it (default 2: as many as this 2-core machine has cores).
# Prints one line per run (passed, failed, seconds, load) and the failures, and exits 1 if any run failed.
#
#     scripts/busy_suite.sh                 # or: RUNS=1 HOGS=2 scripts/busy_suite.sh -x tests/judge
#
# Runs in the project's environment (./dev): the same suite as `./dev just test`.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
hogs=${HOGS:-2}
log=$(mktemp -d)
pids=()
for _ in $(seq "$hogs"); do
  python3 -c 'while True: pass' &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
echo "busy_suite: $runs runs in a row and one in a random order, beside $hogs CPU hogs; logs in $log"
status=0
run() {  # run NAME [ENV...]
  local name=$1 t0=$SECONDS
  shift
  env "$@" ./dev python -m pytest -q -p no:cacheprovider "${extra[@]}" > "$log/$name.txt" 2>&1
  local rc=$? tail
  tail=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed).* =+$' "$log/$name.txt" | tail -n 1)
  printf '%-10s exit %s  %s  %d s  load %s\n' "$name" "$rc" "${tail:-?}" $((SECONDS - t0)) "$(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E '^(FAILED|ERROR) ' "$log/$name.txt" | sed 's/^/    /'
  [ "$rc" -eq 0 ] || status=1
}
extra=("$@")
for i in $(seq "$runs"); do
  run "run-$i"
done
seed=${TEST_ORDER_SEED:-$RANDOM}
run "random" "TEST_ORDER_SEED=$seed"
echo "the random order: TEST_ORDER_SEED=$seed (the same seed gives the same order)"
exit $status
