#!/usr/bin/env bash
# Kernel time per recorded event, with the floor beside it: during 4 unpaced iperf3 flows on
# loopback, interleaved rounds of
#   - `tcptape-record check --cost` (every stage attached, BPF run-time statistics on): ns per
#     recorded event, per stage and in all (the softirq context programs included), and
#   - the floor: a program that returns at once at each tracepoint the recorder attaches
#     (recorder/scripts/hooks_floor.bpf.c), with the same statistics on: what `bpf_stats` reports
#     for a run that does no work.
# Root needed; iperf3 and clang from apt.
#
#   recorder/scripts/kernel_cost.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 6 s, 3 rounds)
#
# KERNEL_COST_BASE=PATH also runs another build's tcptape-record in each round (a before/after
# comparison; a build without the `(context)` row counts the stages only).
set -euo pipefail

secs="${1:-6}"; rounds="${2:-3}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
command -v iperf3 > /dev/null || { echo "needs iperf3 (apt install iperf3)" >&2; exit 1; }
command -v clang > /dev/null || { echo "needs clang (apt install clang)" >&2; exit 1; }
cargo build --release -q --manifest-path "$root/Cargo.toml" -p tcptape-recorder \
    --bin tcptape-record --example hooks_floor
rec="$target/release/tcptape-record"
work="$(mktemp -d)"
port=$((20000 + $$ % 20000))
cleanup() {
    [[ -n "${srv_pid:-}" ]] && kill "$srv_pid" 2>/dev/null || true
    [[ -n "${floor_pid:-}" ]] && kill "$floor_pid" 2>/dev/null || true
    sysctl -q kernel.bpf_stats_enabled=0 || true
    rm -rf "$work"
}
trap cleanup EXIT
clang -O2 -target bpf -c "$here/hooks_floor.bpf.c" -o "$work/hooks_floor.o"
iperf3 -s -p "$port" > /dev/null 2>&1 &
srv_pid=$!
sleep 0.5

# Total run time and runs of every tracing program loaded now.
stats() {
    bpftool -j prog show | python3 -c '
import json, sys
t = n = 0
for p in json.load(sys.stdin):
    if p.get("type") == "tracing" and "run_cnt" in p:
        t += p["run_time_ns"]; n += p["run_cnt"]
print(t, n)'
}

floor() {
    iperf3 -c 127.0.0.1 -p "$port" -P 4 -t $((secs + 3)) > /dev/null 2>&1 &
    local load=$!
    "$target/release/examples/hooks_floor" "$work/hooks_floor.o" 2> /dev/null &
    floor_pid=$!
    sleep 1.5
    sysctl -q kernel.bpf_stats_enabled=1
    local a b
    a=$(stats); sleep "$secs"; b=$(stats)
    sysctl -q kernel.bpf_stats_enabled=0
    kill "$floor_pid"; wait "$floor_pid" 2> /dev/null || true; floor_pid=
    wait "$load" || true
    python3 -c "
a, b = [int(x) for x in '$a'.split()], [int(x) for x in '$b'.split()]
t, n = b[0] - a[0], b[1] - a[1]
print('%.0f runs/s, %.1f ns a run' % (n / $secs, t / n if n else float('nan')))"
}

cost() {
    local bin="$1"
    iperf3 -c 127.0.0.1 -p "$port" -P 4 -t $((secs + 4)) > /dev/null 2>&1 &
    local load=$!
    sleep 1.5
    "$bin" check --cost "${secs}s" > "$work/cost.txt" 2>&1 || { cat "$work/cost.txt" >&2; exit 1; }
    wait "$load" || true
    # ns per event of all programs, and of the stages' alone (without the context programs).
    awk '/^all /{ev=$2; per=$3+0; cpu=$4+0}
         /^\(context\) /{ctx=$5+0; has=1}
         END{printf "%s events/s, %s ns per event", ev, per;
             if (has) printf " (the stages alone: %.0f; the context programs: %.2f%% of one CPU)",
                 (cpu - ctx) / 100 * 1e9 / ev, ctx;
             print ""}' "$work/cost.txt"
    sed -n '/^STAGE  *EVENTS/,/^all /p' "$work/cost.txt" >> "$work/tables"
}

for r in $(seq "$rounds"); do
    echo "round $r/$rounds"
    echo "  floor, empty programs:  $(floor)"
    echo "  check --cost:           $(cost "$rec")"
    if [[ -n "${KERNEL_COST_BASE:-}" ]]; then
        echo "  check --cost, base:     $(cost "$KERNEL_COST_BASE")"
    fi
done
echo
echo "per-stage tables, in order:"
cat "$work/tables"
