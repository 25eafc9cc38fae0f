#!/usr/bin/env bash
# The synthetic recording set the fleet benchmarks read, made where missing:
# SETDIR/host=hNNN/date=2026-01-01/tcptape.parquet for NNN in 1..HOSTS (bulk mix, seed NNN).
#
#   analyzer/benches/synthetic_set.sh HOSTS EVENTS_PER_HOST SETDIR TCPTAPE_RECORD
set -euo pipefail
HOSTS=$1 EVENTS=$2 SET=$3 RECORD=$4
for i in $(seq -f '%03g' 1 "$HOSTS"); do
    dir="$SET/host=h$i/date=2026-01-01"
    [ -f "$dir/tcptape.parquet" ] && continue
    mkdir -p "$dir"
    "$RECORD" synth -q -o "$dir/tcptape.parquet" --events "$EVENTS" --seed "$((10#$i))" \
        --mix bulk --hostname "h$i"
done
