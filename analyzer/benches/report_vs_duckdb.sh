#!/usr/bin/env bash
# Benchmark of `tcptape report` on a large synthetic recording, against DuckDB computing the same
# per-stage percentiles over the same file.
#
#   analyzer/benches/report_vs_duckdb.sh [EVENTS] [WORKDIR]     (default 10000000, /tmp/tcptape-bench)
#
# Needs: cargo, python3 with duckdb (`pip install duckdb`), GNU time (/usr/bin/time).
# TCPTAPE_BIN=path uses an already built analyzer.
# Prints: the machine, tcptape's full report time and peak RSS, DuckDB's time and peak RSS for
# the per-stage percentiles, the ratio, and whether both give the same percentiles.
set -euo pipefail
EVENTS=${1:-10000000}
WORK=${2:-/tmp/tcptape-bench}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"

REC="$WORK/synth-$EVENTS.parquet"
TCPTAPE=${TCPTAPE_BIN:-$TARGET/release/tcptape}
[ -n "${TCPTAPE_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p tcptape-analyzer)
if [ ! -f "$REC" ]; then
    (cd "$ROOT" && cargo build --release -q -p tcptape-recorder)
    "$TARGET/release/tcptape-record" synth -q -o "$REC" --events "$EVENTS" --seed 1 --mix bulk
fi

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"
echo "recording: $REC ($(du -h "$REC" | cut -f1), $EVENTS events)"

measure() { # label, command...: runs it under GNU time, prints wall seconds and peak RSS (MiB)
    local label=$1; shift
    /usr/bin/time -v "$@" > "$WORK/$label.out" 2> "$WORK/$label.time"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$WORK/$label.time" \
        | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rss=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$WORK/$label.time")
    echo "$label $wall $rss"
}

# Warm the page cache so that both read the file from memory.
cat "$REC" > /dev/null
read -r _ T_WALL T_RSS < <(measure tcptape "$TCPTAPE" report -q --format json "$REC")
read -r _ D_WALL D_RSS < <(measure duckdb python3 "$ROOT/analyzer/benches/duckdb_stages.py" "$REC")

echo "tcptape report (full report, JSON): ${T_WALL}s, peak RSS ${T_RSS} MiB"
echo "duckdb (per-stage percentiles only): ${D_WALL}s, peak RSS ${D_RSS} MiB"
python3 - "$WORK/tcptape.out" "$WORK/duckdb.out" "$T_WALL" "$D_WALL" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
tw, dw = float(sys.argv[3]), float(sys.argv[4])
print(f"ratio tcptape/duckdb: {tw / dw:.2f}x (duckdb query alone: {d['seconds']:.2f}s)")
key = lambda r: (r["from"], r["to"])
ts = {key(r): r for r in t["stages"]}
ds = {key(r): r for r in d["stages"]}
fields = ["count", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]
diff = [(k, f, ts.get(k, {}).get(f), ds.get(k, {}).get(f))
        for k in sorted(set(ts) | set(ds)) for f in fields
        if ts.get(k, {}).get(f) != ds.get(k, {}).get(f)]
if diff:
    print(f"percentiles differ in {len(diff)} places, e.g. {diff[:5]}")
    sys.exit(1)
print(f"percentiles identical for all {len(ts)} stage pairs")
PY
