#!/usr/bin/env bash
# The writer's instructions per event: the writer benchmark (recorder/benches/writer.rs) run under
# valgrind's callgrind, counting only inside the segment writer (encode, Parquet, zstd, file
# steps). Unlike the benchmark's ns/event, this figure does not move with the host's load, so two
# builds can be compared on a busy machine; it says nothing about cache misses or preemption.
#
#   recorder/scripts/writer_instructions.sh [EVENTS]     (default 200000; valgrind from apt)
#
# Prints instructions per event and bytes per event on disk. About 30 s for 200 000 events.
set -euo pipefail

events="${1:-200000}"
command -v valgrind > /dev/null || {
    echo "writer_instructions.sh needs valgrind (apt-get install valgrind)" >&2
    exit 1
}
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(cargo bench -q --manifest-path "$root/Cargo.toml" -p tcptape-recorder --bench writer \
    --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "writer" and m.get("executable"):
        print(m["executable"])')"
[[ -x "$bin" ]] || { echo "the writer benchmark did not build" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The benchmark writes the events three times (best of 3); every instruction inside
# tcptape_recorder::segment_writer (and what it calls) is counted, the event generation and the
# JSON comparison are not.
TCPTAPE_BENCH_EVENTS="$events" valgrind --tool=callgrind --callgrind-out-file="$work/cg" \
    --toggle-collect='tcptape_recorder::segment_writer::*' "$bin" --bench > "$work/out" 2> "$work/err" || {
    cat "$work/err" >&2
    exit 1
}
total="$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$work/cg")"
bytes="$(sed -n 's/.*parquet on disk *\([0-9]*\) bytes, \([0-9.]*\) bytes\/event.*/\2/p' "$work/out")"
python3 -c "print(f'writer: {$total / (3 * $events):.0f} instructions per event (callgrind, $events events x 3), $bytes bytes per event on disk')"
