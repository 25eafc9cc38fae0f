#!/usr/bin/env bash
# Benchmark of `tcptape report` over a recording set of many hosts: time and peak memory as the
# set grows, the memory bound the report promises (one host at a time, pooled by histograms).
#
#   analyzer/benches/fleet_set.sh [HOSTS] [EVENTS_PER_HOST] [WORKDIR]
#                                  (default 100, 1000000, /tmp/tcptape-fleet)
#
# Needs: cargo and GNU time (/usr/bin/time). TCPTAPE_BIN / TCPTAPE_RECORD_BIN use built binaries.
# Writes HOSTS synthetic recordings (bulk mix, one per host, seeds 1..HOSTS) under
# WORKDIR/set/host=hNNN/date=2026-01-01/, then reports on 10 hosts and on all of them, printing
# wall seconds and peak RSS of each run.
set -euo pipefail
HOSTS=${1:-100}
EVENTS=${2:-1000000}
WORK=${3:-/tmp/tcptape-fleet}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TCPTAPE=${TCPTAPE_BIN:-$TARGET/release/tcptape}
RECORD=${TCPTAPE_RECORD_BIN:-$TARGET/release/tcptape-record}
[ -n "${TCPTAPE_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p tcptape-analyzer)
[ -n "${TCPTAPE_RECORD_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p tcptape-recorder)

SET="$WORK/set-$HOSTS-$EVENTS"
"$ROOT/analyzer/benches/synthetic_set.sh" "$HOSTS" "$EVENTS" "$SET" "$RECORD"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"
echo "set: $SET ($(du -sh "$SET" | cut -f1), $HOSTS hosts × $EVENTS events)"

measure() { # label, paths...: one report, its wall seconds and peak RSS
    local label=$1; shift
    local out
    out=$( { /usr/bin/time -f '%e %M' "$TCPTAPE" report -q --format json "$@" > /dev/null; } 2>&1 | tail -1)
    printf '%-28s %8.1f s  peak RSS %6d MiB\n' "$label" "${out% *}" "$(( ${out#* } / 1024 ))"
}
measure "one host" "$SET/host=h001"
few=$(ls -d "$SET"/host=h0* | head -10)
# shellcheck disable=SC2086
measure "10 hosts" $few
measure "$HOSTS hosts (the set)" "$SET"
