#!/usr/bin/env bash
# The three ways to get the per stage pair breakdown of a recording set: `tcptape report` on one
# machine, `tcptape sql stages` on DuckDB, and on Spark SQL in local mode; time and peak memory
# of each on the same set, and whether their counts agree.
#
#   analyzer/benches/fleet_sql.sh [HOSTS] [EVENTS_PER_HOST] [WORKDIR]
#                                  (default 50, 1000000, /tmp/tcptape-fleet)
#
# Needs: cargo, GNU time, python3 with duckdb and pyspark (`pip install duckdb pyspark`), Java.
# PYTHON picks the interpreter; TCPTAPE_BIN / TCPTAPE_RECORD_BIN use built binaries. The set is
# synthetic_set.sh's (the one fleet_set.sh reads), made where missing.
set -euo pipefail
HOSTS=${1:-50}
EVENTS=${2:-1000000}
WORK=${3:-/tmp/tcptape-fleet}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PYTHON=${PYTHON:-python3}
TCPTAPE=${TCPTAPE_BIN:-$TARGET/release/tcptape}
RECORD=${TCPTAPE_RECORD_BIN:-$TARGET/release/tcptape-record}
[ -n "${TCPTAPE_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p tcptape-analyzer)
[ -n "${TCPTAPE_RECORD_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p tcptape-recorder)

SET="$WORK/set-$HOSTS-$EVENTS"
"$ROOT/analyzer/benches/synthetic_set.sh" "$HOSTS" "$EVENTS" "$SET" "$RECORD"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"
echo "set: $SET ($(du -shL "$SET" | cut -f1), $HOSTS hosts × $EVENTS events)"
cat "$SET"/host=*/date=*/*.parquet > /dev/null # the page cache holds the set for every run

measure() { # key, label, command...: wall seconds and peak RSS (MiB) under GNU time
    local key=$1 label=$2; shift 2
    /usr/bin/time -f '%e %M' -o "$WORK/$key.time" "$@" > "$WORK/$key.json"
    read -r wall rss < "$WORK/$key.time"
    printf '%-34s %8.1f s  peak RSS %6d MiB\n' "$label" "$wall" "$((rss / 1024))"
}
measure report "tcptape report (one process)" "$TCPTAPE" report -q --format json "$SET"
measure duckdb "DuckDB (tcptape sql stages)" "$PYTHON" "$ROOT/analyzer/benches/sql_engines.py" duckdb "$SET" "$TCPTAPE"
measure spark "Spark local (tcptape sql stages)" "$PYTHON" "$ROOT/analyzer/benches/sql_engines.py" spark "$SET" "$TCPTAPE"
"$PYTHON" - "$WORK" <<'PY'
import json, os, sys
w = sys.argv[1]
load = lambda n: json.load(open(os.path.join(w, n + ".json")))
rep = load("report")
counts = lambda rows: {(r["from"], r["to"]): r["count"] for r in rows}
want = counts(rep["pooled"]["stages"])
for key, name in (("duckdb", "DuckDB"), ("spark", "Spark local")):
    got = load(key)
    same = counts(got["stages"]) == want
    print(f"{name}: query {got['seconds']:.1f} s; counts {'equal to' if same else 'DIFFER from'} "
          f"the report's pooled counts ({sum(want.values())} pairs)")
PY
